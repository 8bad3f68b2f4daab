/**
 * ZIP archive reader over random-access file reads, enough for torch.save checkpoints:
 * central directory, local headers, ZIP64 (archives or entries past 4 GiB), stored entries
 * (method 0, what torch writes) and deflated ones (method 8, decompressed whole in memory).
 * Only the central directory and the entries asked for are ever read, one at a time, so a
 * multi-GB checkpoint is never held in memory at once.
 *
 * Hostile archives are bounded: entries may not share or overlap bytes of the file, deflated
 * entries may not claim more than MAX_DEFLATE_RATIO times their size, each entry's content is
 * checked against its CRC-32 as it is read, and an entry read in several ranges (tensor views
 * of one storage) is read and inflated once for all of them.
 */
import { crc32 as zlibCrc32 } from "node:zlib";
import { InflateError, inflateExactly } from "../util/inflate.ts";

/** One file inside the archive, as the central directory describes it. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  /** Offset of the entry's local file header. */
  localHeaderOffset: number;
  /** Where the next entry (or the central directory) starts: the entry's data must end here. */
  dataLimit: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const EOCD64_LOCATOR_SIZE = 20;
const EOCD64_MIN_SIZE = 56;
const CENTRAL_HEADER_SIZE = 46;
const LOCAL_HEADER_SIZE = 30;
const MAX_COMMENT = 0xffff;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
/** A torch checkpoint's directory is ~100 bytes per tensor; far more means corruption. */
const MAX_DIRECTORY_BYTES = 64 << 20;
/** Weights deflate by a few percent and pickles by ~10x, while a run of zeros deflates
 * ~1000x: where the deflated entries of an archive together inflate past this ratio (plus one
 * small allowance) it is taken for a zip bomb, so a small file cannot claim gigabytes. */
export const MAX_DEFLATE_RATIO = 32;
const DEFLATE_ALLOWANCE = 1 << 20;

/** Reads exactly `length` bytes at `position`; a short read is an error naming the offset. */
export async function readAt(
  file: Deno.FsFile,
  position: number,
  length: number,
  what: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(out.subarray(filled));
    if (n === null) {
      throw new Error(
        `${what}: unexpected end of file at offset ${position + filled} ` +
          `(wanted ${length} bytes from offset ${position}; file truncated?)`,
      );
    }
    filled += n;
  }
  return out;
}

function u64(view: DataView, at: number): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`zip: 64-bit field at +${at} is too large (${value})`);
  }
  return Number(value);
}

/** CRC-32 (IEEE), as stored in ZIP headers (zlib's, native: GB/s, so every entry is checked). */
export function crc32(bytes: Uint8Array): number {
  return zlibCrc32(bytes) >>> 0;
}

/** A deflated entry's data, inflated to exactly its declared size. */
async function inflateEntry(bytes: Uint8Array, expected: number, name: string) {
  try {
    return await inflateExactly([bytes], "deflate-raw", expected);
  } catch (e) {
    if (!(e instanceof InflateError)) throw e;
    throw new Error(
      e.kind === "overflow"
        ? `zip: entry '${name}' inflates past its declared ${expected} bytes`
        : e.kind === "short"
        ? `zip: entry '${name}': inflated to ${e.filled} bytes, central directory says ${expected}`
        : `zip: entry '${name}': ${e.message}`,
    );
  }
}

/** An entry's whole content, kept while more range reads of it are expected. */
interface HeldContent {
  bytes: Promise<Uint8Array>;
  /** Range reads still expected; the content is dropped when this reaches 0. */
  reads: number;
}

export class ZipReader {
  /** Entries by name, in central directory order. */
  readonly entries: Map<string, ZipEntry>;
  readonly fileSize: number;
  /** Deflated entries inflated so far (each read of a deflated entry not held counts one). */
  inflations = 0;
  private readonly dataOffsets = new Map<string, number>();
  private readonly held = new Map<string, HeldContent>();
  private readonly expected = new Map<string, number>();

  private constructor(
    private readonly file: Deno.FsFile,
    readonly path: string,
    fileSize: number,
    entries: Map<string, ZipEntry>,
  ) {
    this.fileSize = fileSize;
    this.entries = entries;
  }

  /** Opens an archive and reads its central directory. Call close() when done. */
  static async open(path: string | URL): Promise<ZipReader> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      const entries = await readCentralDirectory(file, size);
      return new ZipReader(file, String(path), size, entries);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  close(): void {
    this.file.close();
    this.held.clear();
  }

  /** The entry, or an error naming the missing file. */
  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`zip: no entry '${name}' in ${this.path}`);
    return e;
  }

  /** File offset of the entry's first data byte (read from its local header, cached). */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    const at = entry.localHeaderOffset;
    if (at + LOCAL_HEADER_SIZE > this.fileSize) {
      throw new Error(
        `zip: local header of '${entry.name}' at offset ${at} lies past the end of the file ` +
          `(${this.fileSize} bytes)`,
      );
    }
    const header = await readAt(this.file, at, LOCAL_HEADER_SIZE, "zip");
    const view = new DataView(header.buffer);
    if (view.getUint32(0, true) !== SIG_LOCAL) {
      throw new Error(`zip: bad local header signature at offset ${at} for entry '${entry.name}'`);
    }
    const nameLen = view.getUint16(26, true);
    const extraLen = view.getUint16(28, true);
    const start = at + LOCAL_HEADER_SIZE + nameLen + extraLen;
    if (start + entry.compressedSize > this.fileSize) {
      throw new Error(
        `zip: data of '${entry.name}' (offset ${start}, ${entry.compressedSize} bytes) runs past ` +
          `the end of the file (${this.fileSize} bytes); truncated archive?`,
      );
    }
    if (start + entry.compressedSize > entry.dataLimit) {
      throw new Error(
        `zip: data of '${entry.name}' (offset ${start}, ${entry.compressedSize} bytes) overlaps ` +
          `what follows it at offset ${entry.dataLimit}: entries may not share bytes`,
      );
    }
    this.dataOffsets.set(entry.name, start);
    return start;
  }

  /** The whole (decompressed) content of an entry, checked against its CRC-32. */
  async read(nameOrEntry: string | ZipEntry): Promise<Uint8Array> {
    const entry = typeof nameOrEntry === "string" ? this.entry(nameOrEntry) : nameOrEntry;
    const start = await this.dataOffset(entry);
    const raw = await readAt(this.file, start, entry.compressedSize, `zip: entry '${entry.name}'`);
    let out = raw;
    if (entry.method !== 0) {
      this.inflations++;
      out = await inflateEntry(raw, entry.uncompressedSize, entry.name);
    }
    if (crc32(out) !== entry.crc32) {
      throw new Error(`zip: CRC mismatch in entry '${entry.name}' (data at offset ${start})`);
    }
    return out;
  }

  /**
   * Announces `reads` more readRange calls on `entry` (say, one per tensor viewing a storage):
   * where there are several, its content is read, inflated and checked once and kept until
   * the last of them. Reads beyond those announced read the entry again.
   */
  expectReads(entry: ZipEntry, reads: number): void {
    this.expected.set(entry.name, (this.expected.get(entry.name) ?? 0) + reads);
  }

  /**
   * `length` bytes of an entry's content starting at `start`, in a fresh array. The entry is
   * read whole (so that its CRC can be checked), once for all the reads announced with
   * expectReads.
   */
  async readRange(entry: ZipEntry, start: number, length: number): Promise<Uint8Array> {
    if (start < 0 || length < 0 || start + length > entry.uncompressedSize) {
      throw new Error(
        `zip: range [${start}, ${start + length}) is outside entry '${entry.name}' ` +
          `(${entry.uncompressedSize} bytes)`,
      );
    }
    let held = this.held.get(entry.name);
    if (!held) {
      const reads = this.expected.get(entry.name) ?? 0;
      this.expected.delete(entry.name);
      held = { bytes: this.read(entry), reads: Math.max(reads, 1) };
      this.held.set(entry.name, held);
    }
    const last = --held.reads === 0;
    if (last) this.held.delete(entry.name);
    let whole: Uint8Array;
    try {
      whole = await held.bytes;
    } catch (e) {
      this.held.delete(entry.name);
      throw e;
    }
    // The last reader of the whole content may take it without a copy.
    if (last && start === 0 && length === whole.length) return whole;
    return whole.slice(start, start + length);
  }
}

async function findEocd(file: Deno.FsFile, size: number): Promise<number> {
  if (size < EOCD_SIZE) {
    throw new Error(`zip: file is ${size} bytes, too small to be a zip archive`);
  }
  const tailLen = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = size - tailLen;
  const tail = await readAt(file, tailStart, tailLen, "zip");
  const view = new DataView(tail.buffer);
  // Scan backwards: the record sits at the end, followed only by its comment.
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    if (view.getUint32(i, true) !== SIG_EOCD) continue;
    const commentLen = view.getUint16(i + 20, true);
    if (i + EOCD_SIZE + commentLen === tailLen) return tailStart + i;
  }
  throw new Error(
    `zip: end of central directory record not found in the last ${tailLen} bytes ` +
      `(file is ${size} bytes): truncated or not a zip archive`,
  );
}

interface DirectoryLocation {
  count: number;
  offset: number;
  size: number;
}

async function locateDirectory(
  file: Deno.FsFile,
  size: number,
  eocdAt: number,
): Promise<DirectoryLocation> {
  const eocd = new DataView((await readAt(file, eocdAt, EOCD_SIZE, "zip")).buffer);
  const disk = eocd.getUint16(4, true);
  const cdDisk = eocd.getUint16(6, true);
  let count = eocd.getUint16(10, true);
  let cdSize = eocd.getUint32(12, true);
  let cdOffset = eocd.getUint32(16, true);
  const needs64 = count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX;
  const locAt = eocdAt - EOCD64_LOCATOR_SIZE;
  let hasLocator = false;
  if (locAt >= 0) {
    const loc = new DataView((await readAt(file, locAt, EOCD64_LOCATOR_SIZE, "zip")).buffer);
    hasLocator = loc.getUint32(0, true) === SIG_EOCD64_LOCATOR;
    if (hasLocator) {
      const eocd64At = u64(loc, 8);
      if (eocd64At + EOCD64_MIN_SIZE > locAt) {
        throw new Error(
          `zip: ZIP64 end of central directory offset ${eocd64At} (from locator at offset ` +
            `${locAt}) is out of range`,
        );
      }
      const rec = new DataView((await readAt(file, eocd64At, EOCD64_MIN_SIZE, "zip")).buffer);
      if (rec.getUint32(0, true) !== SIG_EOCD64) {
        throw new Error(`zip: bad ZIP64 end of central directory signature at offset ${eocd64At}`);
      }
      if (rec.getUint32(16, true) !== 0 || rec.getUint32(20, true) !== 0) {
        throw new Error("zip: multi-disk archives are not supported");
      }
      count = u64(rec, 32);
      cdSize = u64(rec, 40);
      cdOffset = u64(rec, 48);
    }
  }
  if (needs64 && !hasLocator) {
    throw new Error(
      `zip: end of central directory at offset ${eocdAt} needs a ZIP64 record, but no ZIP64 ` +
        `locator precedes it`,
    );
  }
  if (!hasLocator && (disk !== 0 || cdDisk !== 0)) {
    throw new Error("zip: multi-disk archives are not supported");
  }
  if (cdOffset + cdSize > size) {
    throw new Error(
      `zip: central directory at offset ${cdOffset} (${cdSize} bytes) extends past the end of ` +
        `the file (${size} bytes): truncated archive?`,
    );
  }
  return { count, offset: cdOffset, size: cdSize };
}

async function readCentralDirectory(
  file: Deno.FsFile,
  size: number,
): Promise<Map<string, ZipEntry>> {
  const eocdAt = await findEocd(file, size);
  const loc = await locateDirectory(file, size, eocdAt);
  if (loc.size > MAX_DIRECTORY_BYTES) {
    throw new Error(
      `zip: central directory at offset ${loc.offset} claims ${loc.size} bytes (limit ` +
        `${MAX_DIRECTORY_BYTES}): corrupt archive?`,
    );
  }
  const cd = await readAt(file, loc.offset, loc.size, "zip: central directory");
  const view = new DataView(cd.buffer);
  const decoder = new TextDecoder("utf-8", { fatal: false });
  const entries = new Map<string, ZipEntry>();
  const deflated = { compressed: 0, inflated: 0 };
  let p = 0;
  for (let i = 0; i < loc.count; i++) {
    const at = loc.offset + p;
    if (p + CENTRAL_HEADER_SIZE > cd.length || view.getUint32(p, true) !== SIG_CENTRAL) {
      throw new Error(
        `zip: bad central directory header ${i} of ${loc.count} at offset ${at}: corrupt archive`,
      );
    }
    const flags = view.getUint16(p + 8, true);
    const method = view.getUint16(p + 10, true);
    const crc = view.getUint32(p + 16, true);
    let compressedSize = view.getUint32(p + 20, true);
    let uncompressedSize = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    const diskStart = view.getUint16(p + 34, true);
    let localHeaderOffset = view.getUint32(p + 42, true);
    const varStart = p + CENTRAL_HEADER_SIZE;
    const next = varStart + nameLen + extraLen + commentLen;
    if (next > cd.length) {
      throw new Error(`zip: central directory header at offset ${at} runs past the directory`);
    }
    const name = decoder.decode(cd.subarray(varStart, varStart + nameLen));
    // ZIP64 extended information: present fields replace the saturated 32-bit ones, in order.
    let e = varStart + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = view.getUint16(e, true);
      const len = view.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) {
        throw new Error(`zip: extra field of '${name}' at offset ${loc.offset + e} is truncated`);
      }
      if (id === 0x0001) {
        let f = e + 4;
        const take = () => {
          if (f + 8 > e + 4 + len) {
            throw new Error(`zip: ZIP64 extra field of '${name}' is too short`);
          }
          const v = u64(view, f);
          f += 8;
          return v;
        };
        if (uncompressedSize === U32_MAX) uncompressedSize = take();
        if (compressedSize === U32_MAX) compressedSize = take();
        if (localHeaderOffset === U32_MAX) localHeaderOffset = take();
      }
      e += 4 + len;
    }
    if (flags & 1) throw new Error(`zip: entry '${name}' is encrypted`);
    if (diskStart !== 0 && diskStart !== U16_MAX) {
      throw new Error("zip: multi-disk archives are not supported");
    }
    if (method !== 0 && method !== 8) {
      throw new Error(
        `zip: entry '${name}' uses compression method ${method}; only stored (0) and deflate (8) ` +
          `are supported`,
      );
    }
    if (method === 0 && compressedSize !== uncompressedSize) {
      throw new Error(
        `zip: stored entry '${name}' has compressed size ${compressedSize} != size ` +
          `${uncompressedSize}`,
      );
    }
    if (method === 8) {
      // Summed over the archive: a per-entry allowance would let many small bombs add up.
      deflated.compressed += compressedSize;
      deflated.inflated += uncompressedSize;
      if (deflated.inflated > MAX_DEFLATE_RATIO * deflated.compressed + DEFLATE_ALLOWANCE) {
        throw new Error(
          `zip: the deflated entries up to '${name}' claim ${deflated.inflated} bytes from ` +
            `${deflated.compressed}: over ${MAX_DEFLATE_RATIO}x is refused as a zip bomb ` +
            `(torch stores entries uncompressed; re-save the checkpoint with torch.save)`,
        );
      }
    }
    if (localHeaderOffset + LOCAL_HEADER_SIZE + compressedSize > size) {
      throw new Error(
        `zip: entry '${name}' (local header at offset ${localHeaderOffset}, ${compressedSize} ` +
          `bytes) lies past the end of the file (${size} bytes)`,
      );
    }
    if (entries.has(name)) throw new Error(`zip: duplicate entry '${name}'`);
    entries.set(name, {
      name,
      method,
      compressedSize,
      uncompressedSize,
      crc32: crc,
      localHeaderOffset,
      dataLimit: size,
    });
    p = next;
  }
  refuseOverlaps(entries, loc, size);
  return entries;
}

/**
 * Entries may not share bytes of the file (many names over one region would multiply what a
 * small file stands for): each one's local header, name and data (at least 30 + name + data
 * bytes; the exact span is checked against `dataLimit` once its local header is read) must
 * end before the next entry or the central directory begins.
 */
function refuseOverlaps(entries: Map<string, ZipEntry>, cd: DirectoryLocation, size: number) {
  const regions = [...entries.values()].map((e) => ({
    start: e.localHeaderOffset,
    minEnd: e.localHeaderOffset + LOCAL_HEADER_SIZE + e.compressedSize,
    entry: e as ZipEntry | null,
  }));
  regions.push({ start: cd.offset, minEnd: cd.offset + cd.size, entry: null });
  regions.sort((a, b) => a.start - b.start);
  for (let i = 0; i < regions.length; i++) {
    const { start, minEnd, entry } = regions[i];
    const next = regions[i + 1];
    const limit = next ? next.start : size;
    if (minEnd > limit) {
      const what = (r: typeof regions[number]) =>
        r.entry ? `entry '${r.entry.name}'` : "the central directory";
      throw new Error(
        `zip: ${what(regions[i])} (offset ${start}, at least ${minEnd - start} bytes) overlaps ` +
          `${next ? `${what(next)} at offset ${next.start}` : "the end of the file"}: entries ` +
          `may not share bytes`,
      );
    }
    if (entry) entry.dataLimit = limit;
  }
}
