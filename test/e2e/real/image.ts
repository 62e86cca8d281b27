// Portico's image for a real-node test file: built (or taken from the cache)
// by scripts/image.sh; when it cannot be, the file's tests skip and say why.
import type { LabImage } from '../../lab/index.ts';
import { porticoImage, PorticoImageError } from '../../lab/realnode-portico.ts';

export async function imageOrSkip(ctx: Mocha.Context): Promise<LabImage> {
  const image = await porticoImage().catch((err: unknown) => {
    if (err instanceof PorticoImageError) return err;
    throw err;
  });
  if (image instanceof PorticoImageError) {
    if (ctx.test?.parent) ctx.test.parent.title += ` (skipped: ${image.message})`;
    ctx.skip();
  }
  return image;
}
