// Builds Portico's native addon with node-gyp, offline: node-gyp is pointed at
// Node headers already on the machine (--nodedir) and never downloads any.
// Run by the speaker package's `install` script and by `pnpm run build:native`.
//
// Where the headers come from, first match wins:
//   1. $PORTICO_NODEDIR (a directory holding include/node/node_api.h)
//   2. the running Node's own prefix (official tarballs ship include/node)
//   3. the npm `node` package's platform package next to the running binary
//      (node_modules/node/node_modules/node-<os>-<arch>/include/node)
//   4. $npm_config_nodedir, then /usr and /usr/local (distribution packages)
// Node-API is ABI-stable, so any of them builds an addon every Node >= 20 loads.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

if (process.platform !== 'linux') {
  console.log(`portico: skipping the native addon on ${process.platform}; the speaker runs on Linux only`);
  process.exit(0);
}
if (process.env.PORTICO_SKIP_NATIVE === '1') {
  console.log('portico: PORTICO_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}

const hasHeaders = (dir) => !!dir && existsSync(path.join(dir, 'include', 'node', 'node_api.h')) &&
  existsSync(path.join(dir, 'include', 'node', 'common.gypi'));

function candidates() {
  const out = [];
  if (process.env.PORTICO_NODEDIR) out.push(process.env.PORTICO_NODEDIR);
  const prefix = path.dirname(path.dirname(process.execPath));
  out.push(prefix);
  const bundled = path.join(prefix, 'node_modules');
  if (existsSync(bundled)) {
    for (const name of readdirSync(bundled)) {
      if (name.startsWith(`node-${process.platform}-`)) out.push(path.join(bundled, name));
    }
  }
  if (process.env.npm_config_nodedir) out.push(process.env.npm_config_nodedir);
  out.push('/usr', '/usr/local');
  return out;
}

const nodedir = candidates().find(hasHeaders);
if (!nodedir) {
  console.error('portico: no Node headers found for the native addon (looked in: ' + candidates().join(', ') +
    '). Set PORTICO_NODEDIR to a directory holding include/node/node_api.h.');
  process.exit(1);
}

const require = createRequire(import.meta.url);
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const args = [gyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'];
console.log(`portico: building the native addon against ${nodedir}`);
const r = spawnSync(process.execPath, args, { cwd: here, stdio: 'inherit', env: { ...process.env, npm_config_nodedir: nodedir } });
if (r.status !== 0) {
  console.error('portico: the native addon failed to build (needs python3, make and a C compiler); ' +
    'set PORTICO_SKIP_NATIVE=1 to install without it');
  process.exit(r.status ?? 1);
}
