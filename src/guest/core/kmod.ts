/**
 * @module
 * Kernel module load order without depmod: each .ko names its dependencies in its .modinfo section
 * ("depends=a,b"); the order is the roots' dependency closure, dependencies first.
 */

/** The "depends=" field of a module's .modinfo (module names, as the kernel spells them). */
export function moduleDepends(ko: Uint8Array): string[] {
  const text = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength).toString('latin1');
  const i = text.indexOf('\0depends=');
  if (i < 0) return [];
  const end = text.indexOf('\0', i + 1);
  const v = text.slice(i + '\0depends='.length, end < 0 ? undefined : end);
  return v.split(',').filter((s) => s !== '');
}

/** Module names compare with - and _ alike (the kernel's rule). */
export const modName = (n: string): string => n.replace(/-/g, '_');

/**
 * The load order for roots: a depth-first walk that puts each module after its dependencies, each
 * once. `depends(name)` gives a module's dependencies, or undefined when there is no such module.
 */
export function loadOrder(roots: readonly string[], depends: (name: string) => readonly string[] | undefined): string[] {
  const out: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (raw: string, from: string | undefined): void => {
    const name = modName(raw);
    if (done.has(name)) return;
    if (visiting.has(name)) throw new Error(`kernel modules: a dependency cycle through ${name}`);
    const deps = depends(name);
    if (deps === undefined) throw new Error(`kernel modules: no module ${name}${from ? ` (needed by ${from})` : ''}`);
    visiting.add(name);
    for (const d of deps) visit(d, name);
    visiting.delete(name);
    done.add(name);
    out.push(name);
  };
  for (const r of roots) visit(r, undefined);
  return out;
}
