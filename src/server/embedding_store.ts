/**
 * Embeddings and uploads shared by every server on one Redis (`serve --redis URL`), so that an
 * image id given by one host is valid on all of them and no image is encoded twice.
 *
 * Keys (all under `wgsam:v1:`):
 *   emb:<model>:<image id>  hash: data (float32 little-endian bytes), dtype "<f4", shape
 *                           "1,256,64,64", model (the checkpoint's identity)
 *   img:<image id>          the uploaded file as sent (PNG/JPEG), to decode again elsewhere
 *   index / sizes / bytes   what is stored, when it was last used and how big: the size cap
 *
 * `<model>` is a hash of the checkpoint file's bytes (`modelIdentity`), so embeddings of two
 * checkpoints never mix, even under the same file name. The image id is the predictor's
 * content hash of the decoded pixels. Every entry has a TTL, renewed on use; past the byte cap
 * the least recently used entries go. Each host keeps its own LRU in front (the predictor's
 * GPU cache, the app's decoded images); Redis is only asked on a local miss.
 *
 * Redis being down is never an error for a request: reads miss, writes are dropped, and the
 * connection (src/server/redis.ts) logs the outage once and reconnects in the background.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { SharedEmbeddings } from "../predictor.ts";
import { type Redis, redisUp } from "./redis.ts";

const PREFIX = "wgsam:v1:";
const INDEX = `${PREFIX}index`;
const SIZES = `${PREFIX}sizes`;
const TOTAL = `${PREFIX}bytes`;

/**
 * Accounting after a write, atomic: forget index entries whose TTL has passed, count the new
 * entry, then evict least recently used entries while the total is over the cap.
 * KEYS: index, sizes, total, the new key. ARGV: now ms, ttl ms, cap bytes, entry bytes.
 */
const ACCOUNT_SCRIPT = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
for _, k in ipairs(expired) do
  local b = tonumber(redis.call('HGET', KEYS[2], k) or '0')
  redis.call('HDEL', KEYS[2], k)
  redis.call('ZREM', KEYS[1], k)
  redis.call('DECRBY', KEYS[3], b)
end
local prev = redis.call('HGET', KEYS[2], KEYS[4])
if prev then redis.call('DECRBY', KEYS[3], prev) end
redis.call('HSET', KEYS[2], KEYS[4], ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[1], KEYS[4])
local total = redis.call('INCRBY', KEYS[3], ARGV[4])
local evicted = 0
while total > tonumber(ARGV[3]) do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then break end
  local k = popped[1]
  local b = tonumber(redis.call('HGET', KEYS[2], k) or '0')
  redis.call('HDEL', KEYS[2], k)
  redis.call('DEL', k)
  total = redis.call('DECRBY', KEYS[3], b)
  evicted = evicted + 1
end
return evicted
`;

export interface SharedStoreOptions {
  /** The checkpoint's identity (`modelIdentity`); embeddings are keyed by it. */
  model: string;
  /** Lifetime of an unused entry (default one day). */
  ttlS?: number;
  /** Cap on the bytes stored, all hosts and models together (default 4 GiB). */
  maxBytes?: number;
  /** Where errors go (default console.error). */
  log?: (line: string) => void;
}

export interface SharedStoreStats {
  hits: number;
  misses: number;
  writes: number;
  errors: number;
  evicted: number;
}

/** A short, stable identity of a checkpoint: SHA-256 of its bytes, read in chunks. */
export async function modelIdentity(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const chunk = new Uint8Array(8 << 20);
  while (true) {
    const n = await file.read(chunk);
    if (n === null) break;
    hash.update(chunk.subarray(0, n));
  }
  return hash.digest("hex").slice(0, 32);
}

export class SharedStore implements SharedEmbeddings {
  readonly model: string;
  readonly ttlMs: number;
  readonly maxBytes: number;
  private readonly log: (line: string) => void;
  private readonly counts: SharedStoreStats = {
    hits: 0,
    misses: 0,
    writes: 0,
    errors: 0,
    evicted: 0,
  };
  private lastErrorLog = 0;

  constructor(readonly redis: Redis, opts: SharedStoreOptions) {
    if (!/^[0-9a-f]{8,64}$/.test(opts.model)) throw new Error(`bad model identity ${opts.model}`);
    this.model = opts.model;
    this.ttlMs = Math.round((opts.ttlS ?? 86400) * 1000);
    this.maxBytes = opts.maxBytes ?? 4 * 1024 ** 3;
    this.log = opts.log ?? ((line) => console.error(line));
  }

  stats(): SharedStoreStats & { connected: boolean } {
    return { ...this.counts, connected: redisUp(this.redis) };
  }

  private embeddingKey(id: string): string {
    return `${PREFIX}emb:${this.model}:${id}`;
  }

  private imageKey(id: string): string {
    return `${PREFIX}img:${id}`;
  }

  /** Logs a failed command, at most once a minute (the connection logs outages itself). */
  private failed(what: string, e: unknown): void {
    this.counts.errors++;
    if (!redisUp(this.redis)) return;
    const now = Date.now();
    if (now - this.lastErrorLog < 60_000) return;
    this.lastErrorLog = now;
    this.log(`ERROR redis: ${what}: ${(e as Error)?.message ?? e}`);
  }

  async get(id: string): Promise<{ data: Float32Array; shape: number[] } | null> {
    if (!redisUp(this.redis)) {
      this.counts.misses++;
      return null;
    }
    const key = this.embeddingKey(id);
    let entry: Record<string, Buffer>;
    try {
      entry = await this.redis.hgetallBuffer(key);
    } catch (e) {
      this.failed(`reading embedding ${id.slice(0, 16)}`, e);
      this.counts.misses++;
      return null;
    }
    const data = entry.data;
    const shape = entry.shape?.toString().split(",").map(Number) ?? [];
    const n = shape.reduce((a, b) => a * b, 1);
    if (
      !data || entry.dtype?.toString() !== "<f4" || entry.model?.toString() !== this.model ||
      shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0) ||
      data.byteLength !== n * 4
    ) {
      this.counts.misses++;
      return null;
    }
    this.counts.hits++;
    this.touch(key);
    // A copy: the Buffer's offset need not be 4-aligned.
    const floats = new Float32Array(n);
    new Uint8Array(floats.buffer).set(data);
    return { data: floats, shape };
  }

  put(id: string, embedding: { data: Float32Array; shape: number[] }): Promise<void> {
    const bytes = new Uint8Array(
      embedding.data.buffer,
      embedding.data.byteOffset,
      embedding.data.byteLength,
    );
    return this.store(this.embeddingKey(id), {
      data: bytes,
      dtype: "<f4",
      shape: embedding.shape.join(","),
      model: this.model,
    }, bytes.byteLength);
  }

  /** The uploaded file of an image id, or null. */
  async getImage(id: string): Promise<Uint8Array | null> {
    if (!redisUp(this.redis)) return null;
    const key = this.imageKey(id);
    try {
      const entry = await this.redis.hgetBuffer(key, "data");
      if (!entry) return null;
      this.touch(key);
      return new Uint8Array(entry);
    } catch (e) {
      this.failed(`reading image ${id.slice(0, 16)}`, e);
      return null;
    }
  }

  putImage(id: string, file: Uint8Array): Promise<void> {
    return this.store(this.imageKey(id), { data: file }, file.byteLength);
  }

  /** Forgets an image everywhere: its file and this model's embedding of it. */
  async forget(id: string): Promise<void> {
    if (!redisUp(this.redis)) return;
    try {
      await this.redis.del(this.imageKey(id), this.embeddingKey(id));
    } catch (e) {
      this.failed(`deleting ${id.slice(0, 16)}`, e);
    }
  }

  /** Renews a used entry's TTL and its place in the LRU order. */
  private touch(key: string): void {
    this.redis.multi().pexpire(key, this.ttlMs).zadd(INDEX, "XX", Date.now(), key).exec()
      .catch((e: unknown) => this.failed("renewing a TTL", e));
  }

  /** Writes an entry; resolves once Redis has it (or it was dropped), never rejects. */
  private async store(
    key: string,
    fields: Record<string, string | Uint8Array>,
    bytes: number,
  ): Promise<void> {
    if (bytes > this.maxBytes || !redisUp(this.redis)) return;
    const values: (string | Buffer)[] = [];
    for (const [name, value] of Object.entries(fields)) {
      values.push(
        name,
        typeof value === "string"
          ? value
          : Buffer.from(value.buffer, value.byteOffset, value.byteLength),
      );
    }
    const now = Date.now();
    await this.redis.multi().del(key).hset(key, ...values).pexpire(key, this.ttlMs).exec()
      .then(() =>
        this.redis.eval(
          ACCOUNT_SCRIPT,
          4,
          INDEX,
          SIZES,
          TOTAL,
          key,
          now,
          this.ttlMs,
          this.maxBytes,
          bytes,
        )
      )
      .then((evicted: unknown) => {
        this.counts.writes++;
        this.counts.evicted += Number(evicted) || 0;
      })
      .catch((e: unknown) => this.failed(`storing ${key.slice(PREFIX.length, 60)}`, e));
  }
}
