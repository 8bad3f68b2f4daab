/**
 * A decoder's prompt-independent work per image (token-major embedding, src, layer 0's image
 * projections, ...), kept for the last few images and pinned while a call uses it. Shared by
 * SAM's and SAM 2's decoders.
 *
 * Keyed by the embedding's GPU buffer: the map holds the buffer object, so a new embedding
 * (even one allocated after this one was destroyed) is always a new key; contents rewritten in
 * place need `release`. An entry leaves the cache when evicted, released or dropped after a
 * failed call, and is destroyed once no call uses it.
 */
export class PinnedImageCache<E> {
  /** Least recently used first. */
  private readonly slots = new Map<GPUBuffer, Pinned<E>>();

  constructor(
    /** Entries kept at most. */
    private readonly capacity: number,
    /** Frees an entry's tensors (once it is out of the cache and unused). */
    private readonly destroy: (entry: E) => void,
  ) {}

  /**
   * The entry of `key`, pinned for one call: from the cache, or made by `make` now (and kept
   * when `cache`, evicting the least recently used beyond the capacity). Pair with `unpin`.
   */
  acquire(key: GPUBuffer, cache: boolean, make: () => E): Pinned<E> {
    const hit = cache ? this.slots.get(key) : undefined;
    if (hit) {
      this.slots.delete(key); // re-inserted: most recently used
      this.slots.set(key, hit);
      hit.users++;
      return hit;
    }
    const slot: Pinned<E> = { key, entry: make(), users: 1, dropped: !cache };
    if (cache) {
      this.slots.set(key, slot);
      for (const old of this.slots.values()) {
        if (this.slots.size <= this.capacity) break;
        this.drop(old);
      }
    }
    return slot;
  }

  /** Takes an entry out of the cache (a failed call may have filled it); freed once unused. */
  drop(slot: Pinned<E>): void {
    if (this.slots.get(slot.key) === slot) this.slots.delete(slot.key);
    slot.dropped = true;
    if (slot.users === 0) this.destroy(slot.entry);
  }

  /** Ends one call's use of an entry. */
  unpin(slot: Pinned<E>): void {
    slot.users--;
    if (slot.dropped && slot.users === 0) this.destroy(slot.entry);
  }

  /** Forgets the entry of `key`; true when one was kept. */
  release(key: GPUBuffer): boolean {
    const slot = this.slots.get(key);
    if (!slot) return false;
    this.drop(slot);
    return true;
  }

  has(key: GPUBuffer): boolean {
    return this.slots.has(key);
  }

  get size(): number {
    return this.slots.size;
  }

  /** Drops every entry (dispose). */
  clear(): void {
    for (const slot of [...this.slots.values()]) this.drop(slot);
  }
}

/** A cached entry and its pins. */
export interface Pinned<E> {
  readonly key: GPUBuffer;
  readonly entry: E;
  /** Calls using the entry now. */
  users: number;
  /** Out of the cache: destroyed when users reach 0. */
  dropped: boolean;
}
