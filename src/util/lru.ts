/**
 * A least-recently-used map bounded by the total byte size of its values. Used for image
 * embeddings (GPU memory) and by the server for images and low-res logits. An evicted or
 * replaced value is handed to `onEvict` (e.g. to destroy its GPU buffer).
 */
export class ByteLru<K, V> {
  private readonly entries = new Map<K, { value: V; bytes: number }>();
  private used = 0;

  constructor(
    readonly maxBytes: number,
    private readonly onEvict: (value: V, key: K) => void = () => {},
  ) {
    if (!(maxBytes >= 0)) throw new Error(`ByteLru: bad byte bound ${maxBytes}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.used;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  /** The value, now most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    // Re-insert so Map order (oldest first) stays the recency order.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /**
   * Stores a value of `bytes` bytes and evicts the least recently used entries until the
   * bound holds. A value larger than the whole bound is refused (returns false) and evicted
   * at once, so a caller never keeps a dangling reference to it in the cache.
   */
  set(key: K, value: V, bytes: number): boolean {
    this.delete(key);
    if (bytes > this.maxBytes) {
      this.onEvict(value, key);
      return false;
    }
    this.entries.set(key, { value, bytes });
    this.used += bytes;
    for (const [oldKey, old] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(oldKey);
      this.used -= old.bytes;
      this.onEvict(old.value, oldKey);
    }
    return true;
  }

  delete(key: K): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    this.used -= entry.bytes;
    this.onEvict(entry.value, key);
    return true;
  }

  clear(): void {
    for (const key of [...this.entries.keys()]) this.delete(key);
  }

  keys(): K[] {
    return [...this.entries.keys()];
  }
}
