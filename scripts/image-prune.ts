// Run by the Dockerfile's prod stage on the production node_modules: removes
// what the processes never load, so the runtime image stays small.
//   - type declarations and source maps (.d.ts, .map); licence files stay;
//   - each package's own test/ and tests/ directories;
//   - prebuilds/ of packages for the Bare runtime (bare-*), which Node never loads;
//   - the documentation comments (/** ... */ on lines of their own) of
//     @kubernetes/client-node's generated JavaScript: two thirds of its 25 MB.
// A block is removed only when it starts a line and ends one, so code and
// strings are left as they are; the build's smoke tests then load every module.
//   node image-prune.ts <node_modules/.pnpm>   (Node 24 runs it as it is)
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const arg = process.argv[2];
if (!arg) throw new Error('usage: node image-prune.ts <node_modules/.pnpm>');
const root: string = arg;
const stats = { files: 0, dirs: 0, stripped: 0, before: 0, after: 0 };

function walk(dir: string, fn: (p: string, isDir: boolean) => boolean | void): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) continue;
    if (e.isDirectory()) { if (fn(p, true) !== false) walk(p, fn); } else fn(p, false);
  }
}

/** Package directories: .pnpm/<id>/node_modules/<name> and .pnpm/<id>/node_modules/@scope/<name>. */
function packages(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const id of readdirSync(root)) {
    const nm = path.join(root, id, 'node_modules');
    let names: string[];
    try { names = readdirSync(nm); } catch { continue; }
    for (const n of names) {
      const p = path.join(nm, n);
      if (n.startsWith('@')) for (const s of readdirSync(p)) out.push([`${n}/${s}`, path.join(p, s)]);
      else out.push([n, p]);
    }
  }
  return out.filter(([, p]) => { try { return statSync(p).isDirectory(); } catch { return false; } });
}

function stripDocComments(file: string): void {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  let inDoc = false;
  for (const line of src.split('\n')) {
    const t = line.trim();
    if (!inDoc && t.startsWith('/**')) { if (!t.endsWith('*/')) inDoc = true; continue; }
    if (inDoc) { if (t.endsWith('*/')) inDoc = false; continue; }
    out.push(line);
  }
  if (inDoc) return; // not a shape this pass knows: leave the file alone
  const s = out.join('\n');
  stats.stripped++; stats.before += src.length; stats.after += s.length;
  writeFileSync(file, s);
}

for (const [name, dir] of packages()) {
  for (const d of ['test', 'tests', ...(name.startsWith('bare-') ? ['prebuilds'] : [])]) {
    try { if (statSync(path.join(dir, d)).isDirectory()) { rmSync(path.join(dir, d), { recursive: true }); stats.dirs++; } } catch { /* absent */ }
  }
  walk(dir, (p, isDir) => {
    if (isDir) return p !== path.join(dir, 'node_modules');
    if (/\.d\.[cm]?ts$/.test(p) || p.endsWith('.map')) { rmSync(p); stats.files++; return; }
    if (name === '@kubernetes/client-node' && p.endsWith('.js')) stripDocComments(p);
  });
}
console.log(`image-prune: ${stats.files} files and ${stats.dirs} directories removed; comments of ${stats.stripped} files: ${(stats.before / 1e6).toFixed(1)} -> ${(stats.after / 1e6).toFixed(1)} MB`);
