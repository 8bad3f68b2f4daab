/**
 * Reader for PyTorch's zip checkpoint format (torch.save since 1.6), as Meta's official SAM
 * `.pth` files use: a zip holding `<prefix>/data.pkl` (the pickled state dict) and one entry
 * `<prefix>/data/<key>` per storage, whatever `<prefix>` is. Tensors are described from the
 * pickle first and their bytes read on demand, so a checkpoint can be converted tensor by
 * tensor without holding it whole.
 */
import {
  PickledTensor,
  type PyValue,
  torchPersistentLoad,
  TorchStorageRef,
  unpickle,
} from "./pickle.ts";
import type { HostTensor, StateDict } from "./types.ts";
import { type ZipEntry, ZipReader } from "./zip.ts";
import { DTYPE_SIZE, type LazyTensor, numel } from "./lazy.ts";

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    // A dimension of size 1 may carry any stride without changing the layout.
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** Copies a strided view out of `span` (which starts at the view's first element). */
function gather(span: Uint8Array, shape: number[], stride: number[], esize: number): Uint8Array {
  const count = numel(shape);
  const out = new Uint8Array(count * esize);
  const index = new Array(shape.length).fill(0);
  let src = 0;
  for (let i = 0; i < count; i++) {
    out.set(span.subarray(src * esize, (src + 1) * esize), i * esize);
    // Odometer step over the row-major index, tracking the source element.
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      src += stride[d];
      if (index[d] < shape[d]) break;
      src -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}

/** An open `.pth` checkpoint. */
export class PthArchive {
  private constructor(
    /** The archive (its `inflations` count shows each deflated storage inflated once). */
    readonly zip: ZipReader,
    /** The archive's folder name, with its trailing slash. */
    readonly prefix: string,
    /** Tensors in state-dict order. */
    readonly tensors: LazyTensor[],
  ) {}

  static async open(path: string | URL): Promise<PthArchive> {
    const zip = await ZipReader.open(path);
    try {
      const pickles = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (pickles.length !== 1) {
        throw new Error(
          pickles.length === 0
            ? `pth: no '<prefix>/data.pkl' in ${path}: not a torch.save zip checkpoint`
            : `pth: several pickles in ${path}: ${pickles.join(", ")}`,
        );
      }
      const prefix = pickles[0].slice(0, -"data.pkl".length);
      const order = zip.entries.get(`${prefix}byteorder`);
      if (order && new TextDecoder().decode(await zip.read(order)).trim() !== "little") {
        throw new Error(`pth: ${path} was saved big-endian; only little-endian is supported`);
      }
      const root = unpickle(await zip.read(pickles[0]), {
        persistentLoad: torchPersistentLoad,
      });
      const tensors = describeTensors(zip, prefix, root, String(path));
      return new PthArchive(zip, prefix, tensors);
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  close(): void {
    this.zip.close();
  }
}

/**
 * The state dict inside a checkpoint's root object: the root itself, or the value of its only
 * key "model" (`torch.save({"model": state_dict})`, the layout of Meta's SAM 2 `.pt` files).
 */
function stateDictOf(root: PyValue): PyValue {
  if (root instanceof Map && root.size === 1 && root.get("model") instanceof Map) {
    return root.get("model")!;
  }
  return root;
}

function describeTensors(zip: ZipReader, prefix: string, pickled: PyValue, path: string) {
  const root = stateDictOf(pickled);
  if (!(root instanceof Map)) {
    throw new Error(`pth: ${path} holds a pickled ${typeof root}, not a state dict`);
  }
  const tensors: LazyTensor[] = [];
  const storageBytes = new Map<string, number>(); // zip entry -> bytes
  let tensorBytes = 0;
  for (const [name, value] of root) {
    if (typeof name !== "string") throw new Error(`pth: state dict key ${String(name)} not a str`);
    if (!(value instanceof PickledTensor)) {
      const wrapped = value instanceof Map ? " (a nested dict: is the state dict wrapped?)" : "";
      throw new Error(`pth: entry '${name}' of ${path} is not a tensor${wrapped}`);
    }
    const lazy = describeTensor(zip, prefix, name, value);
    const entry = zip.entries.get(`${prefix}data/${(value.storage as TorchStorageRef).key}`)!;
    storageBytes.set(entry.name, entry.uncompressedSize);
    tensorBytes += lazy.byteLength;
    tensors.push(lazy);
  }
  // Tensors may share a storage (tied weights, views), but not so often that the archive's
  // bytes are multiplied: together they may need at most MAX_STORAGE_REUSE times the bytes of
  // the storages they view.
  const stored = [...storageBytes.values()].reduce((a, b) => a + b, 0);
  if (tensorBytes > MAX_STORAGE_REUSE * stored) {
    throw new Error(
      `pth: ${path}: the tensors need ${tensorBytes} bytes but the storages they view hold ` +
        `${stored}: views reusing storage over ${MAX_STORAGE_REUSE} times are refused`,
    );
  }
  return tensors;
}

/** How many times over the tensors of a checkpoint may view its storage bytes, in total. */
export const MAX_STORAGE_REUSE = 4;

function describeTensor(zip: ZipReader, prefix: string, name: string, t: PickledTensor) {
  const storage = t.storage;
  if (!(storage instanceof TorchStorageRef)) {
    throw new Error(`pth: tensor '${name}' has no torch storage`);
  }
  const entryName = `${prefix}data/${storage.key}`;
  const entry: ZipEntry | undefined = zip.entries.get(entryName);
  if (!entry) throw new Error(`pth: tensor '${name}': storage entry '${entryName}' is missing`);
  const esize = DTYPE_SIZE[storage.dtype];
  const count = numel(t.shape);
  // Last element reached through the strides, plus one: the storage span the tensor needs.
  const extent = count === 0
    ? 0
    : t.storageOffset + t.shape.reduce((s, n, d) => s + (n - 1) * t.stride[d], 0) + 1;
  const available = Math.min(storage.numel, Math.floor(entry.uncompressedSize / esize));
  if (extent > available) {
    throw new Error(
      `pth: tensor '${name}' of shape [${t.shape}] (storage offset ${t.storageOffset}) needs ` +
        `${extent} elements of storage '${storage.key}', which holds only ${available} ` +
        `(${entry.uncompressedSize} bytes of ${storage.dtype})`,
    );
  }
  // A view that reads some storage elements more than once (stride 0: an expanded tensor,
  // or overlapping strides) would let a few bytes of file stand for gigabytes of tensor.
  if (count > 0 && count > extent - t.storageOffset) {
    throw new Error(
      `pth: tensor '${name}' of shape [${t.shape}] with strides [${t.stride}] reads ` +
        `${extent - t.storageOffset} storage elements ${count} times: overlapping or broadcast ` +
        `views are refused (save a contiguous copy)`,
    );
  }
  // Views of one storage share one read (and inflation) of its entry.
  if (count > 0) zip.expectReads(entry, 1);
  const contiguous = isContiguous(t.shape, t.stride);
  const start = t.storageOffset * esize;
  const read = async () => {
    if (count === 0) return new Uint8Array(0);
    if (contiguous) return await zip.readRange(entry, start, count * esize);
    const span = await zip.readRange(entry, start, (extent - t.storageOffset) * esize);
    return gather(span, t.shape, t.stride, esize);
  };
  return { name, dtype: storage.dtype, shape: t.shape, byteLength: count * esize, read };
}

/** Reads a whole `.pth` state dict into memory. */
export async function readPth(path: string | URL): Promise<StateDict> {
  const archive = await PthArchive.open(path);
  try {
    const sd: StateDict = new Map();
    for (const t of archive.tensors) {
      const tensor: HostTensor = {
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        bytes: await t.read(),
      };
      sd.set(t.name, tensor);
    }
    return sd;
  } finally {
    archive.close();
  }
}
