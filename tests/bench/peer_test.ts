/**
 * The onnxruntime-web peer: one fast smoke run of the decoder's shape-only graph on wasm
 * (session, one run at 1200x1800, output shapes), and the child runner's time limit. Skips,
 * saying so, when the shared fixtures are absent.
 */
import assert from "node:assert/strict";
import { decoderPoints, median, peerGraphs, runPeer } from "../../bench/peer/ort_peer.ts";
import { runPeerInChild } from "../../bench/peer/peer_cli.ts";
import { sharedFixture, skipIfMissing } from "../util/fixtures.ts";

const benchDir = sharedFixture("bench/sam_decoder.shape-only.onnx");

Deno.test("median", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.throws(() => median([]));
});

Deno.test("decoderPoints: two labelled points in the resized frame plus the padding point", () => {
  const { coords, labels } = decoderPoints([1200, 1800]);
  assert.deepEqual(labels, [1, 0, -1]);
  // 1800 x 1200 -> 1024 x 683: x scales by 1024/1800, y by 683/1200.
  assert.ok(Math.abs(coords[0] - 0.45 * 1024) < 1e-9);
  assert.ok(Math.abs(coords[1] - 0.55 * 683) < 1e-9);
  assert.deepEqual(coords.slice(4), [0, 0]);
});

Deno.test({
  name: "peer smoke: onnxruntime-web wasm runs the decoder graph at 1200x1800",
  ignore: skipIfMissing(benchDir, "peer decoder smoke"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const graph = peerGraphs(new URL(".", benchDir!).pathname).find((g) => g.id === "decoder");
    assert.ok(graph, "decoder graph listed");
    const [r] = await runPeer({
      backend: "wasm",
      graph,
      threads: 1,
      cases: [{ name: "smoke", decoder: { prompts: 1, origHw: [1200, 1800] }, warmup: 0, runs: 1 }],
    });
    assert.equal(r.status, "ok", r.status === "ok" ? "" : r.reason);
    if (r.status !== "ok") return;
    assert.deepEqual(r.outputs.masks, [1, 4, 1200, 1800]);
    assert.deepEqual(r.outputs.low_res_masks, [1, 4, 256, 256]);
    assert.deepEqual(r.outputs.iou_predictions, [1, 4]);
    assert.equal(r.runsMs.length, 1);
    assert.ok(r.createMs > 0 && r.medianMs > 0);
  },
});

Deno.test({
  name: "peer child: a time limit makes every case unavailable, with the reason",
  ignore: skipIfMissing(benchDir, "peer child time limit"),
  async fn() {
    const graph = peerGraphs(new URL(".", benchDir!).pathname).find((g) => g.id === "decoder")!;
    const res = await runPeerInChild({
      backend: "wasm",
      graph,
      cases: [
        { name: "a", decoder: { prompts: 1, origHw: [1200, 1800] }, warmup: 0, runs: 1 },
        { name: "b", decoder: { prompts: 2, origHw: [1200, 1800] }, warmup: 0, runs: 1 },
      ],
    }, 50);
    assert.deepEqual(res.map((r) => [r.case, r.status]), [["a", "unavailable"], [
      "b",
      "unavailable",
    ]]);
    for (const r of res) {
      if (r.status === "unavailable") assert.match(r.reason, /did not finish within/);
    }
  },
});

Deno.test("peerGraphs: lists only files present", () => {
  assert.deepEqual(peerGraphs("/nonexistent/dir/"), []);
});
