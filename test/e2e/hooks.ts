// Root hooks: the shared lab is stopped once every test file has run.
import { stopSharedLab } from './shared-lab.ts';

export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    await stopSharedLab();
  },
};
