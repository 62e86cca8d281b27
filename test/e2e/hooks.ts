// Root hooks: the shared labs (process nodes, real nodes) are stopped once every test file has run.
import { stopSharedLab } from './shared-lab.ts';
import { stopRealLab } from './real/real-lab.ts';

export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    await stopSharedLab();
    await stopRealLab();
  },
};
