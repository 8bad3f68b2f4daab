/**
 * A restricted pickle reader for the `data.pkl` that torch.save writes for a state dict.
 *
 * It never runs or emulates arbitrary Python: the only globals it accepts are the few a
 * state dict needs (OrderedDict, torch's tensor rebuild helpers, torch's typed storage
 * classes); any other global is refused the moment it is named. REDUCE is interpreted only
 * for the allow-listed callables and only with the argument shapes torch.save produces;
 * BUILD is accepted only on an OrderedDict (whose `_metadata` attribute is dropped).
 */
import type { DType } from "./types.ts";

/** A global named by GLOBAL / STACK_GLOBAL that passed the allow-list. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A Python tuple (lists are plain arrays, dicts are Maps). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** What `torch._utils._rebuild_tensor_v2` would have rebuilt, described, not built. */
export class PickledTensor {
  constructor(
    /** Whatever the persistent-load callback returned for the tensor's storage. */
    readonly storage: PyValue,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** A torch.save persistent id: ('storage', storage_type, key, location, numel). */
export class TorchStorageRef {
  constructor(
    /** Names the storage's zip entry, `<prefix>/data/<key>`. */
    readonly key: string,
    readonly dtype: DType,
    readonly location: string,
    /** Elements in the storage. */
    readonly numel: number,
  ) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | Map<PyValue, PyValue>
  | PyGlobal
  | PickledTensor
  | TorchStorageRef;

/**
 * torch's legacy typed storage classes (still what torch.save names), by element dtype. A Map,
 * as every allow-list here: names from the file must not find `constructor` or `__proto__`
 * on an object's prototype.
 */
export const TORCH_STORAGE_DTYPES: ReadonlyMap<string, DType> = new Map([
  ["FloatStorage", "float32"],
  ["HalfStorage", "float16"],
  ["BFloat16Storage", "bfloat16"],
  ["DoubleStorage", "float64"],
  ["LongStorage", "int64"],
  ["IntStorage", "int32"],
  ["ByteStorage", "uint8"],
]);

/** Storage classes that are harmless but whose dtype this project has no use for. */
const UNSUPPORTED_STORAGES = new Set([
  "BoolStorage",
  "CharStorage",
  "ShortStorage",
  "ComplexFloatStorage",
  "ComplexDoubleStorage",
  "UntypedStorage",
]);

const ORDERED_DICT = "collections.OrderedDict";
const REBUILD_TENSOR = "torch._utils._rebuild_tensor_v2";
const REBUILD_PARAMETER = "torch._utils._rebuild_parameter";

function allowGlobal(module: string, name: string): PyGlobal {
  const full = `${module}.${name}`;
  if (full === ORDERED_DICT || full === REBUILD_TENSOR || full === REBUILD_PARAMETER) {
    return new PyGlobal(module, name);
  }
  if (module === "torch" && TORCH_STORAGE_DTYPES.has(name)) return new PyGlobal(module, name);
  if (module === "torch" && UNSUPPORTED_STORAGES.has(name)) {
    throw new Error(
      `pickle: tensor storage type '${full}' is not supported (supported: ` +
        `${[...TORCH_STORAGE_DTYPES.keys()].map((n) => `torch.${n}`).join(", ")})`,
    );
  }
  throw new Error(`pickle: refusing global '${full}' (only state-dict globals are allowed)`);
}

const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x81: "NEWOBJ",
  0x92: "NEWOBJ_EX",
  0x69: "INST",
  0x6f: "OBJ",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x50: "PERSID",
  0x49: "INT",
  0x4c: "LONG",
  0x53: "STRING",
  0x55: "SHORT_BINSTRING",
  0x54: "BINSTRING",
  0x56: "UNICODE",
  0x46: "FLOAT",
  0x67: "GET",
  0x70: "PUT",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

export interface UnpickleOptions {
  /** Maps a BINPERSID id (for torch: the storage tuple) to a value. Without it, refused. */
  persistentLoad?: (pid: PyValue) => PyValue;
}

function describe(v: PyValue): string {
  if (v === null) return "None";
  if (v instanceof PyTuple) return `tuple(${v.items.length})`;
  if (Array.isArray(v)) return `list(${v.length})`;
  if (v instanceof Map) return "dict";
  if (v instanceof PyGlobal) return `global ${v.qualifiedName}`;
  if (v instanceof PickledTensor) return "tensor";
  if (v instanceof Uint8Array) return "bytes";
  if (v instanceof TorchStorageRef) return "storage";
  return typeof v;
}

function isInt(v: PyValue): v is number {
  return typeof v === "number" && Number.isInteger(v);
}

function intTuple(v: PyValue, what: string): number[] {
  if (!(v instanceof PyTuple) || !v.items.every((x) => isInt(x) && x >= 0)) {
    throw new Error(`pickle: ${what} must be a tuple of non-negative ints, got ${describe(v)}`);
  }
  return v.items as number[];
}

function callAllowed(fn: PyValue, args: PyValue, at: number): PyValue {
  if (!(fn instanceof PyGlobal)) {
    throw new Error(`pickle: REDUCE at offset ${at} calls a ${describe(fn)}, not a global`);
  }
  if (!(args instanceof PyTuple)) {
    throw new Error(`pickle: REDUCE at offset ${at}: arguments are a ${describe(args)}`);
  }
  const a = args.items;
  switch (fn.qualifiedName) {
    case ORDERED_DICT:
      if (a.length !== 0) {
        throw new Error(`pickle: OrderedDict at offset ${at} called with ${a.length} arguments`);
      }
      return new Map();
    case REBUILD_TENSOR: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.length !== 6 && a.length !== 7) {
        throw new Error(`pickle: _rebuild_tensor_v2 at offset ${at} got ${a.length} arguments`);
      }
      const [storage, offset, size, stride, requiresGrad, hooks] = a;
      if (!isInt(offset) || offset < 0) {
        throw new Error(`pickle: _rebuild_tensor_v2 at offset ${at}: bad storage offset`);
      }
      const shape = intTuple(size, "tensor size");
      const strides = intTuple(stride, "tensor stride");
      if (shape.length !== strides.length) {
        throw new Error(
          `pickle: tensor at offset ${at} has ${shape.length} dims but ${strides.length} strides`,
        );
      }
      if (typeof requiresGrad !== "boolean") {
        throw new Error(`pickle: _rebuild_tensor_v2 at offset ${at}: requires_grad not a bool`);
      }
      if (!(hooks instanceof Map) || hooks.size !== 0) {
        throw new Error(`pickle: _rebuild_tensor_v2 at offset ${at}: backward hooks not empty`);
      }
      return new PickledTensor(storage, offset, shape, strides);
    }
    case REBUILD_PARAMETER: {
      // (data, requires_grad, backward_hooks): a Parameter is its tensor for our purposes.
      const [data, requiresGrad, hooks] = a;
      if (
        a.length !== 3 || !(data instanceof PickledTensor) || typeof requiresGrad !== "boolean" ||
        !(hooks instanceof Map) || hooks.size !== 0
      ) {
        throw new Error(`pickle: _rebuild_parameter at offset ${at} has unexpected arguments`);
      }
      return data;
    }
    default:
      throw new Error(`pickle: refusing to call '${fn.qualifiedName}' (REDUCE at offset ${at})`);
  }
}

/** Persistent-id loader for torch.save pickles: validates a storage tuple. */
export function torchPersistentLoad(pid: PyValue): PyValue {
  if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== "storage") {
    throw new Error("pickle: unexpected persistent id (expected a torch storage tuple)");
  }
  const [, type, key, location, count] = pid.items;
  const dtype = type instanceof PyGlobal && type.module === "torch"
    ? TORCH_STORAGE_DTYPES.get(type.name)
    : undefined;
  if (!dtype) throw new Error("pickle: storage id without a torch storage type");
  if (typeof key !== "string" || typeof location !== "string") {
    throw new Error("pickle: storage id with a non-string key or location");
  }
  if (typeof count !== "number" || !Number.isInteger(count) || count < 0) {
    throw new Error(`pickle: storage '${key}' has a bad element count`);
  }
  return new TorchStorageRef(key, dtype, location, count);
}

/** Decodes a pickle (protocols 2-5) under the allow-list above; returns the root object. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  let opAt = 0;

  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) {
      throw new Error(
        `pickle: truncated: opcode at offset ${opAt} needs ${n} bytes, ` +
          `${bytes.length - pos} remain`,
      );
    }
  };
  const u8 = () => {
    need(1);
    return bytes[pos++];
  };
  const u16 = () => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) need(Number.MAX_SAFE_INTEGER);
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const text = (n: number) => {
    try {
      return utf8.decode(take(n));
    } catch (e) {
      if ((e as Error).message.startsWith("pickle:")) throw e;
      throw new Error(`pickle: invalid UTF-8 in string at offset ${opAt}`);
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw new Error(`pickle: truncated: unterminated line at offset ${opAt}`);
    const s = text(end - pos);
    pos++;
    return s;
  };
  const pop = (): PyValue => {
    if (stack.length === 0) throw new Error(`pickle: stack underflow at offset ${opAt}`);
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length === 0) throw new Error(`pickle: stack underflow at offset ${opAt}`);
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) throw new Error(`pickle: no MARK for opcode at offset ${opAt}`);
    stack = prev;
    return items;
  };
  const dictOf = (v: PyValue): Map<PyValue, PyValue> => {
    if (!(v instanceof Map)) {
      throw new Error(`pickle: SETITEM(S) at offset ${opAt} on a ${describe(v)}`);
    }
    return v;
  };
  const listOf = (v: PyValue): PyValue[] => {
    if (!Array.isArray(v)) throw new Error(`pickle: APPEND(S) at offset ${opAt} on ${describe(v)}`);
    return v;
  };
  const memoGet = (k: number): PyValue => {
    if (!memo.has(k)) throw new Error(`pickle: memo key ${k} not set (offset ${opAt})`);
    return memo.get(k)!;
  };
  const signedLong = (raw: Uint8Array): number | bigint => {
    let v = 0n;
    for (let i = raw.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]);
    if (raw.length > 0 && raw[raw.length - 1] & 0x80) v -= 1n << BigInt(raw.length * 8);
    const small = v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER);
    return small ? Number(v) : v;
  };

  while (true) {
    opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw new Error(`pickle: protocol above 5 at offset ${opAt}`);
        break;
      case 0x95: // FRAME: a length prefix only; the data follows inline
        u64();
        break;
      case 0x2e: { // STOP
        const result = pop();
        if (stack.length !== 0 || marks.length !== 0) {
          throw new Error(`pickle: STOP at offset ${opAt} with values left on the stack`);
        }
        return result;
      }
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) throw new Error(`pickle: odd DICT item count at offset ${opAt}`);
        const d = new Map<PyValue, PyValue>();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x6c: { // LIST (popMark swaps `stack`, so take the items before pushing)
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x74: { // TUPLE
        const items = popMark();
        stack.push(new PyTuple(items));
        break;
      }
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x73: { // SETITEM
        const value = pop(), key = pop();
        dictOf(top()).set(key, value);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2) throw new Error(`pickle: odd SETITEMS count at offset ${opAt}`);
        const d = dictOf(top());
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x61: { // APPEND
        const value = pop();
        listOf(top()).push(value);
        break;
      }
      case 0x65: { // APPENDS (one at a time: push(...items) overflows the call stack)
        const items = popMark();
        const list = listOf(top());
        for (const item of items) list.push(item);
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64()));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64()).slice());
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(signedLong(take(u8())));
        break;
      case 0x8b: { // LONG4
        const n = u32();
        if (n > 64) throw new Error(`pickle: LONG4 of ${n} bytes at offset ${opAt} is too big`);
        stack.push(signedLong(take(n)));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(allowGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          throw new Error(`pickle: STACK_GLOBAL at offset ${opAt} without two strings`);
        }
        stack.push(allowGlobal(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        stack.push(callAllowed(fn, args, opAt));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        // torch.save's OrderedDict carries `_metadata` (module versions) as instance state.
        if (!(target instanceof Map) || !(state instanceof Map)) {
          throw new Error(
            `pickle: BUILD at offset ${opAt} on a ${describe(target)} with ${describe(state)} ` +
              `state is not allowed`,
          );
        }
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) {
          throw new Error(`pickle: persistent id at offset ${opAt} but no loader given`);
        }
        stack.push(options.persistentLoad(pid));
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        throw new Error(
          `pickle: unsupported opcode 0x${op.toString(16).padStart(2, "0")}` +
            `${name ? ` (${name})` : ""} at offset ${opAt}`,
        );
      }
    }
  }
}
