// Unit tests sit beside the code; end-to-end tests (root, the lab) live in test/e2e.
// One run shares one lab across the end-to-end files (see test/e2e/shared-lab.ts).
// The file list lives in package.json's test:run, not here: a `spec` here would be
// added to every command line, so `mocha path/to/one.test.ts` would run them all.
'use strict';
module.exports = {
  extension: ['ts'],
  reporter: './test/reporter.cjs',
  timeout: 10_000,
  'node-option': ['disable-warning=ExperimentalWarning'],
  require: ['./test/e2e/hooks.ts'],
};
