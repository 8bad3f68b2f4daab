import assert from "node:assert/strict";
import { assertClose } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { readImageFile } from "../../src/image.ts";
import { SamVideoPredictor } from "../../src/sam2/video_predictor.ts";
import { fillHolesInMaskScores, HOLE_FILL_LOGIT } from "../../src/sam2/video_postprocess.ts";
import { loadSam2Fixture, sam2File, sam2Files, sam2Npy } from "./fixture_files.ts";
import { checkProbe, loadProbes } from "./probes.ts";
import { ENCODER_TOL } from "./sam2_cases.ts";

const ctx = await getContext();
const have = sam2Files(
  "sam2-tiny",
  ["sam2-tiny.pt", "fixture.json", "video/frame_000.png", "video_add0_masks.npy"],
  "video predictor",
);

Deno.test({
  name:
    "sam2-tiny video: the three conditioning clicks made before tracking (add0, add1 on frame 0; add2 on frame 3, object absent) give the official masks and object scores",
  ignore: !have,
  async fn() {
    const { sd, arch, fixture } = await loadSam2Fixture("sam2-tiny");
    const video = fixture.video;
    const predictor = SamVideoPredictor.fromStateDict(ctx, sd, arch);
    try {
      for (let i = 0; i < video.frames.length; i++) {
        const name = `video/frame_${String(i).padStart(3, "0")}.png`;
        const url = sam2File("sam2-tiny", name);
        assert.ok(url, `${name} missing`);
        assert.equal(predictor.addFrame(await readImageFile(url)), i);
      }
      const [H, W] = video.frame_size_hw;
      // The steps before the first propagation need no memory.
      const first = video.steps.slice(
        0,
        video.steps.findIndex((s: { op: string }) => s.op !== "add_new_points_or_box"),
      );
      assert.deepEqual(first.map((s: { outputs: string }) => s.outputs), [
        "video_add0",
        "video_add1",
        "video_add2",
      ]);
      for (const step of first) {
        const r = await predictor.addNewPointsOrBox({
          frameIdx: step.frame_idx,
          objId: step.obj_id,
          points: step.points,
          labels: step.labels,
        });
        assert.equal(r.frameIdx, step.frame_idx);
        assert.deepEqual(r.objIds, step.obj_ids_after);
        const masks = await sam2Npy("sam2-tiny", `${step.outputs}_masks.npy`);
        const scores = await sam2Npy("sam2-tiny", `${step.outputs}_obj_scores.npy`);
        assert.deepEqual(masks.shape, [r.objIds.length, H, W]);
        for (let k = 0; k < r.objIds.length; k++) {
          const want = Number(scores.data[k]);
          if (Number.isNaN(want)) {
            assert.ok(
              Number.isNaN(r.objScores[k]),
              `${step.outputs} obj ${k}: score should be NaN`,
            );
          } else {
            assertClose([r.objScores[k]], [want], {
              atol: 2e-5,
              rtol: 2e-5,
              label: `${step.outputs} obj ${k} score`,
            });
          }
          const ref = (masks.data as Float32Array).subarray(k * H * W, (k + 1) * H * W);
          // The fixture's low-res logits reach +-45 (mask_gain): float32 noise of the decoder
          // there is ~6e-5 absolute (as the image goldens' 2e-5 at smaller logits).
          const rep = assertClose(r.maskLogits[k], ref, {
            atol: 1e-4,
            rtol: 1e-5,
            shape: [H, W],
            label: `${step.outputs} obj ${r.objIds[k]} mask logits`,
          });
          // Masks (> 0) agree exactly.
          let flips = 0;
          for (let q = 0; q < H * W; q++) if ((r.maskLogits[k][q] > 0) !== (ref[q] > 0)) flips++;
          assert.equal(flips, 0, `${step.outputs} obj ${r.objIds[k]}: ${flips} mask pixels differ`);
          console.log(`${step.outputs} obj ${r.objIds[k]}: max abs ${rep.maxAbs.toExponential(2)}`);
        }
      }
      // Back on frame 0 after frame 3 (only the last frame's features are kept: frame 0 is
      // encoded again), object 1 re-clicked (its previous logits become the mask input; the
      // fixture has no golden for that): object 2's stored frame-0 output comes back unchanged.
      const again = await predictor.addNewPointsOrBox({
        frameIdx: 0,
        objId: 1,
        points: first[0].points,
        labels: first[0].labels,
      });
      assert.deepEqual(again.objIds, [1, 2]);
      const add1 = await sam2Npy("sam2-tiny", "video_add1_masks.npy");
      assertClose(again.maskLogits[1], (add1.data as Float32Array).subarray(H * W, 2 * H * W), {
        atol: 1e-4,
        rtol: 1e-5,
        label: "object 2 on frame 0 after re-encoding",
      });
      // A frame that was never added is refused.
      await assert.rejects(
        () => predictor.addNewPointsOrBox({ frameIdx: 9, objId: 1, points: [[1, 1]], labels: [1] }),
        /frameIdx 9/,
      );
    } finally {
      predictor.dispose();
    }
  },
});

Deno.test("fillHolesInMaskScores: background regions up to maxArea become 0.1, larger ones and the foreground stay", () => {
  // 6x6: foreground ring around a 2x2 hole; the outside background touches the border.
  const h = 6, w = 6, plane = new Float32Array(h * w).fill(-5);
  for (let y = 1; y <= 4; y++) for (let x = 1; x <= 4; x++) plane[y * w + x] = 3;
  for (const [y, x] of [[2, 2], [2, 3], [3, 2], [3, 3]]) plane[y * w + x] = -1;
  plane[0] = 0; // 0 counts as background
  const copy = plane.slice();
  assert.equal(fillHolesInMaskScores(plane, h, w, 4), 4);
  for (let q = 0; q < h * w; q++) {
    const inHole = [[2, 2], [2, 3], [3, 2], [3, 3]].some(([y, x]) => y * w + x === q);
    assert.equal(plane[q], inHole ? HOLE_FILL_LOGIT : copy[q]);
  }
  // The hole is 4 pixels: a max area of 3 leaves it.
  assert.equal(fillHolesInMaskScores(copy, h, w, 3), 0);
});

const haveMini = sam2Files(
  "sam2-mini",
  [
    "sam2-mini.pt",
    "fixture.json",
    "probes.json",
    "video/frame_000.png",
    "video_add0_obj_scores.npy",
  ],
  "video predictor (sam2-mini, 1024 px)",
);

Deno.test({
  name:
    "sam2-mini video (real-width decoder, 1024 px, 360x240 frames): add0 and add1 on frame 0 match the official probes and object scores",
  ignore: !haveMini,
  async fn() {
    const { sd, arch, fixture } = await loadSam2Fixture("sam2-mini");
    const probes = await loadProbes(new URL(".", haveMini![2]));
    const predictor = SamVideoPredictor.fromStateDict(ctx, sd, arch);
    try {
      predictor.addFrame(await readImageFile(haveMini![3]));
      const steps = fixture.video.steps.slice(0, 2);
      for (const step of steps) {
        const r = await predictor.addNewPointsOrBox({
          frameIdx: step.frame_idx,
          objId: step.obj_id,
          points: step.points,
          labels: step.labels,
        });
        assert.deepEqual(r.objIds, step.obj_ids_after);
        const scores = await sam2Npy("sam2-mini", `${step.outputs}_obj_scores.npy`);
        // From pixels through the 1024-px encoder: the image predictor's end-to-end tolerance.
        assertClose(r.objScores, Array.from(scores.data as Float32Array), {
          atol: ENCODER_TOL.obj,
          rtol: 0,
          label: `${step.outputs} object scores`,
        });
        const all = new Float32Array(r.maskLogits.length * r.maskLogits[0].length);
        r.maskLogits.forEach((m, k) => all.set(m, k * m.length));
        const worst = checkProbe(all, probes[`${step.outputs}_masks`], {
          atol: ENCODER_TOL.logitAtol,
          rtol: ENCODER_TOL.logitRtol,
          label: `${step.outputs} masks`,
        });
        console.log(`sam2-mini ${step.outputs}: max abs at the probes ${worst.toExponential(2)}`);
      }
    } finally {
      predictor.dispose();
    }
  },
});
