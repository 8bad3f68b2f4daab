/**
 * Tuning: the tuner times every candidate of a shape, winners round-trip through the cache
 * file under this adapter's key, dispatches then take them (and WGSAM_TUNE=off ignores them),
 * and `deno task tune` on sam-tiny writes a cache that `SamModel.load` reads, with the same
 * masks as the defaults.
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { linear } from "../../src/kernels/linear.ts";
import { defaultGemmVariant, gemmKey } from "../../src/kernels/matmul.ts";
import {
  candidatesFor,
  defaultVariantFor,
  parseTuneKey,
  tuneKey,
} from "../../src/kernels/tuner.ts";
import {
  adapterKey,
  loadTuneCache,
  recordShapes,
  saveTuneCache,
  setTuneTable,
  tunedDispatches,
  tuneTable,
  variantFor,
} from "../../src/kernels/tuning.ts";
import { readImageFile, SamModel, SamPredictor } from "../../mod.ts";
import { runDeno } from "../util/run_deno.ts";

Deno.test("tuning: tuner times every candidate of a GEMM and an attention shape", async () => {
  const ctx = await getContext();
  for (const key of ["gemm|nk|1x40x24x16", "attention|2x20x35x16|relpos5x7"]) {
    const parsed = parseTuneKey(key);
    assert.ok(parsed, key);
    const rows = await tuneKey(ctx, key, defaultVariantFor(ctx, key), { minMs: 1, maxRuns: 2 });
    assert.deepEqual(
      rows.map((r) => r.variant).sort(),
      [...candidatesFor(parsed, ctx.gpu.hasSubgroups)].sort(),
    );
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].ms <= rows[i].ms);
    assert.ok(rows.every((r) => r.agrees && r.ms > 0 && Number.isFinite(r.gflops)), key);
    assert.ok(rows.every((r) => r.maxDiff < 1e-4), key);
  }
  assert.equal(parseTuneKey("gemm|xx|1x2x3x4"), null);
  await assert.rejects(() => tuneKey(ctx, "conv|1", "tile64"), /unknown shape key/);
});

Deno.test("tuning: cache file round trip per adapter, table used, WGSAM_TUNE=off ignores it", async () => {
  const ctx = await getContext();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tune-cache.json`;
  const key = gemmKey("nk", { batch: 1, M: 9, N: 6, K: 8, strideA: 0, strideB: 0, strideOut: 0 });
  const fallback = defaultGemmVariant(ctx.gpu.software, 9);
  const chosen = fallback === "tile64" ? "reg_m8x8w8" : "tile64";
  try {
    assert.equal(await loadTuneCache(ctx, path), 0); // no file: defaults
    // Another adapter's table stays untouched when this one's is written.
    await Deno.writeTextFile(path, JSON.stringify({ "other adapter": { [key]: "tile16" } }));
    await saveTuneCache(ctx, path, { [key]: chosen });
    const file = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(file["other adapter"], { [key]: "tile16" });
    assert.deepEqual(file[adapterKey(ctx)], { [key]: chosen });

    setTuneTable(ctx, {});
    assert.equal(await loadTuneCache(ctx, path), 1);
    const known = (name: string) => name === chosen || name === fallback;
    assert.equal(variantFor(ctx, key, fallback, known), chosen);
    // A linear of that shape takes the tuned variant and still computes the same values.
    const x = tensorFrom(ctx, new Float32Array(72).map((_, i) => Math.sin(i)), [9, 8]);
    const w = tensorFrom(ctx, new Float32Array(48).map((_, i) => Math.cos(i)), [6, 8]);
    const before = tunedDispatches(ctx);
    const tuned = await linear(ctx, x, w, null).read();
    assert.equal(tunedDispatches(ctx), before + 1);
    const plain = await linear(ctx, x, w, null, { variant: fallback }).read();
    for (let i = 0; i < tuned.length; i++) assert.ok(Math.abs(tuned[i] - plain[i]) < 1e-5);

    Deno.env.set("WGSAM_TUNE", "off");
    try {
      assert.equal(variantFor(ctx, key, fallback, known), fallback);
      assert.equal(await loadTuneCache(ctx, path), 0);
    } finally {
      Deno.env.delete("WGSAM_TUNE");
    }
    // A name no release knows (hand edit, older cache) falls back to the default, and the
    // dispatch still runs.
    setTuneTable(ctx, { [key]: "tile99" });
    assert.equal(variantFor(ctx, key, fallback, known), fallback);
    const hitsBefore = tunedDispatches(ctx);
    const stale = await linear(ctx, x, w, null).read();
    assert.equal(tunedDispatches(ctx), hitsBefore);
    for (let i = 0; i < stale.length; i++) assert.ok(Math.abs(stale[i] - plain[i]) < 1e-5);
    // A corrupt file is ignored, not fatal.
    await Deno.writeTextFile(path, "{not json");
    assert.equal(await loadTuneCache(ctx, path), 0);
  } finally {
    setTuneTable(ctx, {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tuning: deno task tune on sam-tiny writes the cache that SamModel.load reads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const env = { WGSAM_WEIGHTS_DIR: dir };
    const run = await runDeno("src/cli/tune.ts", ["--model", "sam-tiny", "--min-ms", "1"], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /shapes to tune/);
    assert.match(run.stdout, /attention\|\S+ +-> (tiled(pad|par|sg)?|rows\d+w\d+|splitkv\d+)/);
    const file = JSON.parse(await Deno.readTextFile(`${dir}/tune-cache.json`));
    const tables = Object.values(file) as Record<string, string>[];
    assert.equal(tables.length, 1);
    const winners = tables[0];
    assert.ok(Object.keys(winners).some((k) => k.startsWith("gemm|")));

    // The same recorded shapes, loaded in this process: every key is one the model dispatches.
    const image = await readImageFile("tests/fixtures/sam-tiny/image.png");
    const model = await SamModel.load("sam-tiny");
    const predictor = new SamPredictor(model);
    const keys = await recordShapes(model.ctx, async () => {
      await predictor.setImage(image);
      await predictor.predict({ points: [[60, 40]], labels: [1], multimask: true });
    });
    assert.ok(keys.every((k) => parseTuneKey(k) !== null));
    const defaults = await predictor.predict({ points: [[60, 40]], labels: [1], multimask: true });
    predictor.dispose();
    model.dispose();

    // Loading with the cache in place installs this adapter's winners; masks are unchanged.
    const prev = Deno.env.get("WGSAM_WEIGHTS_DIR");
    Deno.env.set("WGSAM_WEIGHTS_DIR", dir);
    try {
      const tunedModel = await SamModel.load("sam-tiny");
      assert.deepEqual(tuneTable(tunedModel.ctx), winners);
      const p2 = new SamPredictor(tunedModel);
      await p2.setImage(image);
      const before = tunedDispatches(tunedModel.ctx);
      const tuned = await p2.predict({ points: [[60, 40]], labels: [1], multimask: true });
      assert.ok(tunedDispatches(tunedModel.ctx) > before);
      for (let i = 0; i < tuned.scores.length; i++) {
        assert.ok(Math.abs(tuned.scores[i] - defaults.scores[i]) < 1e-4);
        let diff = 0;
        for (let j = 0; j < tuned.masks[i].length; j++) {
          diff += tuned.masks[i][j] ^ defaults.masks[i][j];
        }
        assert.ok(diff <= 2, `mask ${i}: ${diff} pixels differ`);
      }
      p2.dispose();
      setTuneTable(tunedModel.ctx, {});
      tunedModel.dispose();
    } finally {
      if (prev === undefined) Deno.env.delete("WGSAM_WEIGHTS_DIR");
      else Deno.env.set("WGSAM_WEIGHTS_DIR", prev);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
