// Mocha's spec output, then the one plain summary line that CI reads.
'use strict';
const Mocha = require('mocha');

class PorticoReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const s = this.stats;
      process.stdout.write(`tests: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}
module.exports = PorticoReporter;
