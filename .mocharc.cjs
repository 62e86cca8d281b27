// Unit tests sit beside the code; end-to-end tests (root, the lab) live in test/e2e.
// One run shares one lab across the end-to-end files (see test/e2e/shared-lab.ts).
'use strict';
module.exports = {
  spec: ['packages/*/src/**/*.test.ts', 'test/lab/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/vm/**/*.test.ts', 'test/*.test.ts'],
  extension: ['ts'],
  reporter: './test/reporter.cjs',
  timeout: 10_000,
  'node-option': ['disable-warning=ExperimentalWarning'],
  require: ['./test/e2e/hooks.ts'],
};
