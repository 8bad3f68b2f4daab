import assert from "node:assert/strict";
import {
  PickledTensor,
  PyGlobal,
  PyTuple,
  torchPersistentLoad,
  TorchStorageRef,
  unpickle,
} from "../../src/weights/pickle.ts";
import { readPth } from "../../src/weights/pth.ts";
import { buildPth, PickleWriter, stateDictPickle, withTempDir, writeTemp } from "./helpers.ts";

const load = (bytes: Uint8Array) => unpickle(bytes, { persistentLoad: torchPersistentLoad });

Deno.test("a torch state-dict pickle decodes to tensors, _metadata dropped", () => {
  const root = load(stateDictPickle([
    { name: "w", key: "0", storageNumel: 6, shape: [2, 3] },
    { name: "b", key: "1", storageNumel: 1000, storageType: "HalfStorage", offset: 7, shape: [3] },
  ]));
  assert.ok(root instanceof Map);
  assert.deepEqual([...root.keys()], ["w", "b"]);
  const w = root.get("w") as PickledTensor;
  assert.ok(w instanceof PickledTensor);
  assert.deepEqual([w.shape, w.stride, w.storageOffset], [[2, 3], [3, 1], 0]);
  assert.deepEqual(w.storage, new TorchStorageRef("0", "float32", "cpu", 6));
  const b = root.get("b") as PickledTensor;
  assert.deepEqual([b.storageOffset, (b.storage as TorchStorageRef).dtype], [7, "float16"]);
});

Deno.test("GLOBAL naming os.system or posix.system is refused", () => {
  for (const [module, name] of [["os", "system"], ["posix", "system"], ["nt", "system"]]) {
    // The classic payload: cos\nsystem\n + ('touch /tmp/x',) + REDUCE.
    const evil = new PickleWriter().proto(2).global(module, name).str("touch /tmp/pwned")
      .op(0x85).reduce().stop().done();
    assert.throws(() => load(evil), new RegExp(`pickle: refusing global '${module}\\.${name}'`));
  }
  // Globals that look torch-ish but are not on the list.
  for (const [module, name] of [["torch", "load"], ["torch._utils", "_rebuild_qtensor"]]) {
    const p = new PickleWriter().proto(2).global(module, name).stop().done();
    assert.throws(() => load(p), new RegExp(`refusing global '${module}\\.${name}'`));
  }
});

Deno.test("STACK_GLOBAL naming builtins.eval is refused", () => {
  const evil = new PickleWriter().proto(4).shortStr("builtins").shortStr("eval").stackGlobal()
    .shortStr("__import__('os').system('id')").op(0x85).reduce().stop().done();
  assert.throws(() => load(evil), /pickle: refusing global 'builtins\.eval'/);
  const getattr = new PickleWriter().proto(4).shortStr("builtins").shortStr("getattr")
    .stackGlobal().stop().done();
  assert.throws(() => load(getattr), /refusing global 'builtins\.getattr'/);
});

Deno.test("allow-listed globals are only called with state-dict argument shapes", () => {
  // A storage class is a tag, never a callable.
  const callStorage = new PickleWriter().proto(2).global("torch", "FloatStorage").emptyTuple()
    .reduce().stop().done();
  assert.throws(() => load(callStorage), /refusing to call 'torch\.FloatStorage'/);
  // OrderedDict with arguments.
  const odArgs = new PickleWriter().proto(2).global("collections", "OrderedDict").str("x")
    .op(0x85).reduce().stop().done();
  assert.throws(() => load(odArgs), /OrderedDict at offset \d+ called with 1 arguments/);
  // _rebuild_tensor_v2 with a wrong argument count.
  const badRebuild = new PickleWriter().proto(2).global("torch._utils", "_rebuild_tensor_v2")
    .emptyTuple().reduce().stop().done();
  assert.throws(() => load(badRebuild), /_rebuild_tensor_v2 at offset \d+ got 0 arguments/);
  // REDUCE on something that is not a global at all.
  const notGlobal = new PickleWriter().proto(2).str("x").emptyTuple().reduce().stop().done();
  assert.throws(() => load(notGlobal), /REDUCE at offset \d+ calls a string/);
  // BUILD on anything but an OrderedDict (e.g. to set attributes of some object).
  const build = new PickleWriter().proto(2).emptyTuple().emptyDict().build().stop().done();
  assert.throws(() => load(build), /BUILD at offset \d+ on a tuple\(0\)/);
});

Deno.test("unsupported opcodes and malformed pickles give clear errors", () => {
  // NEWOBJ would instantiate a class.
  const newobj = new PickleWriter().proto(2).global("collections", "OrderedDict").emptyTuple()
    .op(0x81).stop().done();
  assert.throws(() => load(newobj), /unsupported opcode 0x81 \(NEWOBJ\) at offset 28/);
  const truncated = new PickleWriter().proto(2).str("hello").done().subarray(0, 8);
  assert.throws(() => load(truncated), /pickle: truncated: opcode at offset 2 needs 5 bytes/);
  const noStop = new PickleWriter().proto(2).emptyDict().done();
  assert.throws(() => load(noStop), /truncated/);
  const badMemo = new PickleWriter().proto(2).op(0x68).op(5).stop().done();
  assert.throws(() => load(badMemo), /memo key 5 not set/);
  const noPersistentLoader = new PickleWriter().proto(2).str("x").persid().stop().done();
  assert.throws(() => unpickle(noPersistentLoader), /persistent id at offset \d+ but no loader/);
  const badPid = new PickleWriter().proto(2).mark().str("module").str("x").tuple().persid()
    .stop().done();
  assert.throws(() => load(badPid), /unexpected persistent id/);
});

Deno.test("plain values decode: ints, longs, floats, lists, tuples, memo", () => {
  const p = new PickleWriter().proto(2).op(0x5d).op(0x71).op(0) // EMPTY_LIST, BINPUT 0
    .mark().int(-5).int(300).int(70000)
    .op(0x8a).op(2).op(0xff).op(0x7f) // LONG1 0x7fff
    .op(0x8a).op(9).op(0).op(0).op(0).op(0).op(0).op(0).op(0).op(0).op(1) // LONG1 2**64
    .op(0x47).op(0x3f).op(0xf8).op(0).op(0).op(0).op(0).op(0).op(0) // BINFLOAT 1.5
    .op(0x4e).bool(true).int(1).int(2).op(0x86) // None, True, (1, 2)
    .op(0x65) // APPENDS
    .op(0x68).op(0).op(0x85) // (the list itself,)
    .op(0x86).stop().done(); // (list, (list,))
  const root = unpickle(p) as PyTuple;
  const list = root.items[0] as unknown[];
  assert.deepEqual(list.slice(0, 7), [-5, 300, 70000, 0x7fff, 2n ** 64n, 1.5, null]);
  assert.equal(list[7], true);
  assert.deepEqual((list[8] as PyTuple).items, [1, 2]);
  assert.equal((root.items[1] as PyTuple).items[0], list, "memo returns the same object");
});

Deno.test("names on Object.prototype are not on the allow-lists", async () => {
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
    const p = new PickleWriter().proto(2).global("torch", name).stop().done();
    assert.throws(() => load(p), new RegExp(`refusing global 'torch\\.${name}'`), name);
    const s = new PickleWriter().proto(4).shortStr("torch").shortStr(name).stackGlobal().stop()
      .done();
    assert.throws(() => load(s), new RegExp(`refusing global 'torch\\.${name}'`), name);
    // Even handed a global that way, the storage loader finds no dtype for it.
    const pid = new PyTuple(["storage", new PyGlobal("torch", name), "0", "cpu", 1]);
    assert.throws(() => torchPersistentLoad(pid), /storage id without a torch storage type/, name);
  }
  // The finding: a storage typed torch.constructor loaded as pixel_mean, of NaN bytes.
  const pth = await buildPth(
    stateDictPickle([{
      name: "pixel_mean",
      key: "0",
      storageNumel: 3,
      storageType: "constructor",
      shape: [3, 1, 1],
    }]),
    { "0": new Uint8Array(12) },
  );
  await withTempDir(async (dir) => {
    await assert.rejects(
      readPth(await writeTemp(dir, "proto.pth", pth)),
      /refusing global 'torch\.constructor'/,
    );
  });
});

Deno.test("a 300,000-item APPENDS decodes (no call-stack overflow)", () => {
  const count = 300_000;
  const p = new PickleWriter().proto(2).op(0x5d).mark(); // EMPTY_LIST, MARK
  for (let i = 0; i < count; i++) p.int(i % 200);
  const list = unpickle(p.op(0x65).stop().done()); // APPENDS
  assert.ok(Array.isArray(list));
  assert.equal(list.length, count);
  assert.equal(list[count - 1], (count - 1) % 200);
});
