/**
 * @module
 * Keeps the identity of elements whose content did not change between two draws. React Flow
 * skips a node or edge it is handed the same object for (and its memoised view), so the diagram
 * redraws only the boxes an event touched instead of every box at every event.
 */

/** Remembers the last list by id; `keep` answers the new list with unchanged elements' old objects. */
export class Unchanged<T extends { id: string }> {
  private last = new Map<string, { sig: string; item: T }>();

  keep(items: readonly T[]): T[] {
    const next = new Map<string, { sig: string; item: T }>();
    const out = items.map((item) => {
      const sig = JSON.stringify(item);
      const prev = this.last.get(item.id);
      const kept = prev?.sig === sig ? prev.item : item;
      next.set(item.id, { sig, item: kept });
      return kept;
    });
    this.last = next;
    return out;
  }
}
