/**
 * The image encoder against the official model's goldens, stage by stage (a failure names its
 * stage), and against an independent oracle: ONNX Runtime (wasm) running the fixture's
 * official `encoder.onnx` export on the same input tensor.
 *
 * Tolerances: every stage (act_patch_embed, act_block{k}, image_embeddings) within max-abs
 * 1e-3 and NMSE <= 1e-6 of the goldens computed from input_tensor.npy; end to end from
 * image.png within max-abs 1e-2 and NMSE <= 1e-5.
 *
 * sam-mini (1024 input, the real models' token grid and windows) is the expensive one: it is
 * encoded once, from its image.png through our preprocessing, after checking that this
 * preprocessing reproduces input_tensor.npy bit for bit, so that one run serves both the
 * per-stage checks and the end-to-end check. The ONNX oracle (onnxruntime-web, wasm) runs on
 * both models: about 4 s for sam-mini's encoder on an idle 2-core machine.
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { getContext, type GpuContext } from "../../src/gpu/context.ts";
import type { Tensor } from "../../src/gpu/tensor.ts";
import {
  cloneTensor,
  encodeImage,
  encoderBufferPlan,
  type EncoderStage,
  ImageEncoder,
} from "../../src/encoder/image_encoder.ts";
import { decodeImageBytes, preprocessImage } from "../../src/encoder/preprocess.ts";
import { OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import { loadSam } from "../../src/weights/load.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, loadGolden, skipIfMissing } from "../util/fixtures.ts";

const STAGE_TOL = { atol: 1e-3, nmse: 1e-6 };
const E2E_TOL = { atol: 1e-2, nmse: 1e-5 };

/** Runs the encoder once, keeping a copy of every stage's output. */
async function encodeWithStages(
  ctx: GpuContext,
  encoder: ImageEncoder,
  input: Float32Array,
): Promise<Map<EncoderStage, Float32Array>> {
  const kept = new Map<EncoderStage, Tensor>();
  const out = encoder.encode(input, {
    onStage: (stage, t) => kept.set(stage, cloneTensor(ctx, t)),
  });
  const stages = new Map<EncoderStage, Float32Array>();
  for (const [stage, t] of kept) {
    stages.set(stage, await t.read());
    t.destroy();
  }
  const embedding = await out.read();
  out.destroy();
  assert.deepEqual(stages.get("image_embeddings"), embedding, "the hook saw the returned tensor");
  return stages;
}

/** Checks every stage the fixture has a golden for; returns the names checked. */
async function checkStages(dir: URL, depth: number, stages: Map<EncoderStage, Float32Array>) {
  const names: EncoderStage[] = [
    "act_patch_embed",
    ...Array.from({ length: depth }, (_, k) => `act_block${k}` as EncoderStage),
    "image_embeddings",
  ];
  for (const name of names) {
    const golden = await loadGolden(dir, `${name}.npy`);
    const got = stages.get(name);
    assert.ok(got, `stage ${name} was not reported`);
    const r = assertClose(got, golden.data as Float32Array, {
      ...STAGE_TOL,
      shape: golden.shape,
      label: `stage ${name}`,
    });
    console.log(`${name}: max abs ${r.maxAbs.toExponential(2)}, NMSE ${r.nmse.toExponential(2)}`);
  }
}

/** The official export run by ONNX Runtime (wasm) on the same input tensor. */
async function onnxEmbedding(dir: URL, input: Float32Array, size: number) {
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(
    await Deno.readFile(new URL("encoder.onnx", dir)),
  );
  try {
    const out = await session.run({
      image: new ort.Tensor("float32", input, [1, 3, size, size]),
    });
    return out.image_embeddings.data as Float32Array;
  } finally {
    await session.release();
  }
}

Deno.test("buffer plan: activation memory per arch; ViT-H well under 1 GB", () => {
  for (const [name, arch] of Object.entries(OFFICIAL_ARCHS)) {
    const plan = encoderBufferPlan(arch);
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    console.log(
      `${name}: peak activations ${mib(plan.peakBytes)} ` +
        `(${
          Object.entries(plan.owned)
            .map(([k, n]) => `${k} ${mib(4 * n)}`).join(", ")
        }), weights ${mib(plan.weightBytes)}`,
    );
  }
  const h = encoderBufferPlan(OFFICIAL_ARCHS.vit_h);
  // 4096 tokens x 1280, 4900 padded window tokens, MLP 5120: about 0.26 GB.
  assert.ok(h.peakBytes < 400 * 2 ** 20, `ViT-H peak activations ${h.peakBytes} bytes`);
  // The MLP hidden layer (4096 x 5120 floats) is the largest single buffer.
  assert.equal(h.owned.big, 4096 * 5120);
  // The weights as uploaded: ViT-H's encoder has about 637M parameters.
  assert.ok(Math.abs(h.weightBytes / 4 / 637e6 - 1) < 0.02, `${h.weightBytes / 4} weights`);
});

Deno.test("sam-tiny: every stage vs goldens and the ONNX export; image.png end to end; buffers reused", async () => {
  const ctx = await getContext();
  const dir = fixtureDir("sam-tiny")!;
  const { sd, arch } = await loadSam(new URL("sam-tiny.pth", dir));
  const encoder = ImageEncoder.fromStateDict(ctx, sd, arch);
  try {
    const input = (await loadGolden(dir, "input_tensor.npy")).data as Float32Array;
    const stages = await encodeWithStages(ctx, encoder, input);
    await checkStages(dir, arch.depth, stages);
    const ours = stages.get("image_embeddings")!;

    const onnx = await onnxEmbedding(dir, input, arch.imgSize);
    const r = assertClose(ours, onnx, { ...STAGE_TOL, label: "ours vs encoder.onnx" });
    console.log(`vs encoder.onnx: max abs ${r.maxAbs.toExponential(2)}`);

    // End to end from the PNG, through the same (reused) activation buffers.
    const image = await decodeImageBytes(await Deno.readFile(new URL("image.png", dir)));
    const encoded = encodeImage(encoder, image);
    assert.deepEqual(encoded.originalSize, [107, 160]);
    assert.deepEqual(encoded.inputSize, [171, 256]);
    assert.deepEqual(encoded.embedding.shape, [1, arch.promptEmbedDim, 16, 16]);
    const e2e = await encoded.embedding.read();
    encoded.embedding.destroy();
    const golden = await loadGolden(dir, "image_embeddings.npy");
    assertClose(e2e, golden.data as Float32Array, { ...E2E_TOL, label: "image.png end to end" });
    // Same pixels, same buffers: the same numbers as the first run (nothing stale).
    assert.deepEqual(e2e, ours);
  } finally {
    encoder.dispose();
  }
  assert.throws(() => encoder.encode(new Float32Array(3)), /after dispose/);
});

/** Counts the bytes of storage buffers created and alive while `work` runs. */
async function trackAllocations(ctx: GpuContext, work: () => Promise<void>) {
  const device = ctx.device;
  const create = device.createBuffer;
  let live = 0, peak = 0, created = 0;
  device.createBuffer = function (desc: GPUBufferDescriptor): GPUBuffer {
    const buffer = create.call(device, desc);
    if (desc.usage & GPUBufferUsage.MAP_READ) return buffer; // read-back staging
    live += desc.size;
    created += desc.size;
    peak = Math.max(peak, live);
    const destroy = buffer.destroy;
    let alive = true;
    buffer.destroy = function () {
      if (alive) live -= desc.size;
      alive = false;
      destroy.call(buffer);
    };
    return buffer;
  };
  try {
    await work();
  } finally {
    device.createBuffer = create;
  }
  return { peak, created };
}

Deno.test("sam-tiny: allocations follow the buffer plan; a second call allocates only its output", async () => {
  const ctx = await getContext();
  const dir = fixtureDir("sam-tiny")!;
  const { sd, arch } = await loadSam(new URL("sam-tiny.pth", dir));
  const encoder = ImageEncoder.fromStateDict(ctx, sd, arch);
  const input = (await loadGolden(dir, "input_tensor.npy")).data as Float32Array;
  const plan = encoder.plan;
  const run = () =>
    trackAllocations(ctx, async () => {
      const out = encoder.encode(input);
      await ctx.sync();
      out.destroy();
    });
  try {
    const first = await run();
    const second = await run();
    const ownedBytes = 4 * Object.values(plan.owned).reduce((a, b) => a + b, 0);
    console.log(`plan peak ${plan.peakBytes} + output ${plan.outputBytes}; measured`, first);
    assert.ok(
      first.peak <= plan.peakBytes + plan.outputBytes,
      `peak ${first.peak} > plan ${plan.peakBytes} + output ${plan.outputBytes}`,
    );
    assert.equal(second.created, first.created - ownedBytes, "owned buffers are not reallocated");
    // A pass allocates its output embedding and nothing else.
    assert.equal(second.created, plan.outputBytes, "a second pass allocates only its output");
  } finally {
    encoder.dispose();
  }
});

Deno.test("ImageEncoder refuses inputs of the wrong size", async () => {
  const ctx = await getContext();
  const dir = fixtureDir("sam-tiny")!;
  const { sd, arch } = await loadSam(new URL("sam-tiny.pth", dir));
  const encoder = ImageEncoder.fromStateDict(ctx, sd, arch);
  try {
    assert.throws(() => encoder.encode(new Float32Array(3 * 128 * 128)), /need 3 x 256 x 256/);
  } finally {
    encoder.dispose();
  }
});

Deno.test("sam-mini: image.png -> preprocessing -> every stage and the embeddings vs goldens", async () => {
  const dir = fixtureDir("sam-mini");
  if (skipIfMissing(dir, "sam-mini encoder")) return;
  const ctx = await getContext();
  const { sd, arch } = await loadSam(new URL("sam-mini.pth", dir!));
  assert.equal(arch.imgSize, 1024);
  const image = await decodeImageBytes(await Deno.readFile(new URL("image.png", dir!)));
  const pre = preprocessImage(image, arch.imgSize);
  // Our preprocessing reproduces input_tensor.npy exactly, so this one run is both "from
  // input_tensor.npy" (per-stage) and "from image.png" (end to end).
  const inputGolden = await loadGolden(dir!, "input_tensor.npy");
  assertClose(pre.tensor, inputGolden.data as Float32Array, { atol: 0, label: "input tensor" });

  const encoder = ImageEncoder.fromStateDict(ctx, sd, arch);
  try {
    const t0 = performance.now();
    const stages = await encodeWithStages(ctx, encoder, pre.tensor);
    console.log(`sam-mini encoder: ${(performance.now() - t0).toFixed(0)} ms`);
    await checkStages(dir!, arch.depth, stages);
    const golden = await loadGolden(dir!, "image_embeddings.npy");
    assertClose(stages.get("image_embeddings")!, golden.data as Float32Array, {
      ...E2E_TOL,
      label: "image.png end to end",
    });
    const onnx = await onnxEmbedding(dir!, pre.tensor, arch.imgSize);
    const r = assertClose(stages.get("image_embeddings")!, onnx, {
      ...STAGE_TOL,
      label: "sam-mini vs encoder.onnx",
    });
    console.log(`sam-mini vs encoder.onnx: max abs ${r.maxAbs.toExponential(2)}`);
  } finally {
    encoder.dispose();
  }
});
