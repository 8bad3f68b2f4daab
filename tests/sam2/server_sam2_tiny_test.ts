/**
 * The server on sam2-tiny (real Deno.serve on loopback): /api/info names the family, a
 * segment request reproduces a golden, "segment everything" with amg.json's parameters gives
 * SAM2AutomaticMaskGenerator's 41 masks, and the embedding endpoint serves the three tensors
 * SAM 2's decoder needs (`?tensor=`), equal to the official features.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { loadSamEngine } from "../../src/server/sam_engine.ts";
import { parseNpy } from "../../src/util/npy.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, fixtureJson, loadGolden } from "../util/fixtures.ts";

Deno.test("server on sam2-tiny: info, segment, everything, the three embedding tensors", async () => {
  const dir = fixtureDir("sam2-tiny")!;
  const engine = await loadSamEngine("sam2-tiny", { cacheBytes: 64 * 1024 * 1024, quiet: true });
  const app = createApp({ engine, log: () => {}, limits: { maxUploadBytes: 1_000_000 } });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(base + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  try {
    const info = await (await fetch(`${base}/api/info`)).json();
    assert.equal(info.model.name, "sam2-tiny");
    assert.equal(info.model.family, "sam2");
    assert.equal(info.model.arch.img_size, 256);
    assert.equal(info.model.meaningless, true);
    assert.match(info.warning, /bundled sam2-tiny test model/);

    const up = await fetch(`${base}/api/images`, {
      method: "POST",
      body: await Deno.readFile(new URL("image.png", dir)),
      headers: { "content-type": "image/png" },
    });
    const image = await up.json();
    assert.equal(up.status, 200, JSON.stringify(image));

    // point2_single: the single-mask output via stability (token 0 here).
    const fixture = await fixtureJson(dir);
    const p = fixture.prompts.point2_single;
    const r = await post(`/api/images/${image.id}/segment`, {
      points: p.point_coords,
      labels: p.point_labels,
      multimask: false,
      format: "rle",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const iou = (await loadGolden(dir, "point2_single_iou.npy")).data as Float32Array;
    assert.ok(Math.abs(r.json.masks[0].score - iou[0]) <= 1e-5);
    const obj = (await loadGolden(dir, "point2_single_obj_score.npy")).data as Float32Array;
    assert.ok(
      Math.abs(r.json.object_score - obj[0]) <= 1e-4,
      `object_score ${r.json.object_score}`,
    );

    const amg = JSON.parse(await Deno.readTextFile(new URL("amg.json", dir)));
    const params = { ...amg.params };
    for (const k of ["mask_threshold", "use_m2m", "multimask_output"]) delete params[k];
    const all = await post(`/api/images/${image.id}/everything`, params);
    assert.equal(all.status, 200, JSON.stringify(all.json).slice(0, 300));
    assert.equal(all.json.count, amg.annotations.length);
    assert.deepEqual(
      all.json.annotations.map((a: { area: number }) => a.area),
      amg.annotations.map((a: { area: number }) => a.area),
    );

    for (const name of ["image_embed", "high_res_feats_0", "high_res_feats_1"]) {
      const q = name === "image_embed" ? "" : `?tensor=${name}`;
      const res = await fetch(`${base}/api/images/${image.id}/embedding${q}`);
      assert.equal(res.status, 200);
      assert.equal(
        res.headers.get("x-wgsam-tensors"),
        "image_embed,high_res_feats_0,high_res_feats_1",
      );
      const got = parseNpy(new Uint8Array(await res.arrayBuffer()));
      const want = await loadGolden(dir, `${name}.npy`);
      assert.deepEqual(got.shape, want.shape, name);
      assertClose(got.data as Float32Array, want.data as Float32Array, { atol: 1e-4, label: name });
    }
    const bad = await fetch(`${base}/api/images/${image.id}/embedding?tensor=nope`);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /image_embed, high_res_feats_0, high_res_feats_1/);
  } finally {
    await server.shutdown();
    engine.dispose();
  }
});
