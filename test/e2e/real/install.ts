// Portico for a real-node test file: its image, built (or taken from the
// cache) by scripts/image.sh, and an install from the manifest around the
// file's tests. An image that cannot be built fails the tests, with the
// build's own error: it is the artifact they are there to prove.
import type { Lab } from '../../lab/index.ts';
import { FIRST_BUILD_TIMEOUT_MS, installPorticoReal, porticoImage, type RealInstall } from '../../lab/realnode-portico.ts';
import { requireE2e } from '../shared-lab.ts';
import { realLab } from './real-lab.ts';

export interface ManifestInstall {
  lab: Lab;
  /** Until uninstall() ran. */
  install: RealInstall | undefined;
  /** `kubectl delete` of the manifest; the after hook then has nothing left to do. */
  uninstall(): Promise<void>;
}

/**
 * Registers, in the calling describe, a before hook that installs Portico from
 * manifests/portico.yaml on the shared real lab and an after hook that deletes
 * `workloads` (kubectl names: service/x, deployment/x) and uninstalls.
 */
export function manifestInstall(workloads: readonly string[]): ManifestInstall {
  const state: ManifestInstall = {
    lab: undefined as unknown as Lab,
    install: undefined,
    async uninstall() {
      const i = state.install;
      state.install = undefined;
      await i?.uninstall();
    },
  };
  before(async function () {
    requireE2e(this);
    this.timeout(FIRST_BUILD_TIMEOUT_MS);
    state.lab = await realLab();
    state.install = await installPorticoReal(state.lab, { image: await porticoImage() });
  });
  after(async function () {
    if (!state.lab) return;
    await state.lab.kubectlResult(['delete', ...workloads, '--ignore-not-found', '--wait=true']);
    await state.uninstall().catch(() => undefined);
  });
  return state;
}
