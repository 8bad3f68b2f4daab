import assert from "node:assert/strict";
import {
  DEFAULT_POLYGON_TOLERANCE,
  findContours,
  joinRings,
  maskToPolygons,
  ringArea2,
  simplifyRing,
  yoloSegLine,
} from "../../src/util/contours.ts";
import { rasterizeEvenOdd } from "./rasterize.ts";

function iou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0, union = 0;
  for (let i = 0; i < a.length; i++) {
    const p = a[i] !== 0, q = b[i] !== 0;
    if (p && q) inter++;
    if (p || q) union++;
  }
  return union === 0 ? 1 : inter / union;
}

function fromRows(rows: string[]): { mask: Uint8Array; width: number; height: number } {
  const height = rows.length, width = rows[0].length;
  const mask = new Uint8Array(width * height);
  rows.forEach((r, y) => [...r].forEach((c, x) => mask[y * width + x] = c === "#" ? 1 : 0));
  return { mask, width, height };
}

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Varied masks: holes, islands in holes, several components, thin lines, image edges. */
interface NamedMask {
  name: string;
  mask: Uint8Array;
  width: number;
  height: number;
}

function variedMasks(): NamedMask[] {
  const out: NamedMask[] = [];
  const W = 160, H = 120;
  const make = (name: string, f: (x: number, y: number) => boolean) => {
    const mask = new Uint8Array(W * H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) mask[y * W + x] = f(x, y) ? 1 : 0;
    out.push({ name, mask, width: W, height: H });
  };
  const disk = (cx: number, cy: number, r: number) => (x: number, y: number) =>
    (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r;
  make("disk", disk(80, 60, 40));
  make("ring with an island", (x, y) => {
    const d = Math.hypot(x + 0.5 - 80, y + 0.5 - 60);
    return (d <= 50 && d > 30) || d < 12;
  });
  make("several components", (x, y) =>
    disk(30, 30, 20)(x, y) || disk(120, 40, 25)(x, y) ||
    (x >= 60 && x < 110 && y >= 80 && y < 110));
  make("touching every image edge", (x, y) => !disk(80, 60, 30)(x, y) && !(x > 140 && y > 100));
  make(
    "thin lines",
    (x, y) =>
      (y === 10 && x >= 5 && x < 150) || (x === 20 && y >= 15 && y < 110) ||
      (y >= 60 && y < 62 && x >= 30 && x < 155) || (x >= 100 && x < 103 && y >= 0 && y < 120),
  );
  make("diagonal band", (x, y) => Math.abs(x - 1.3 * y - 10) < 6);
  make("full", () => true);
  const random = rng(7);
  // Blobs: random disks and boxes with random holes punched in them.
  const disks: [number, number, number, boolean][] = [];
  for (let i = 0; i < 14; i++) {
    disks.push([random() * W, random() * H, 6 + random() * 22, random() < 0.3]);
  }
  make("random blobs with holes", (x, y) => {
    let v = false;
    for (const [cx, cy, r, hole] of disks) {
      if (disk(cx, cy, r)(x, y)) v = !hole;
    }
    return v;
  });
  return out;
}

Deno.test("findContours: one pixel, a square hole, an island, a diagonal pinch", () => {
  const one = fromRows(["...", ".#.", "..."]);
  assert.deepEqual(findContours(one.mask, one.width, one.height), [
    { points: [1, 1, 2, 1, 2, 2, 1, 2], hole: false, parent: -1 },
  ]);

  const holed = fromRows([
    "#####",
    "#...#",
    "#.#.#",
    "#...#",
    "#####",
  ]);
  const rings = findContours(holed.mask, holed.width, holed.height);
  assert.deepEqual(rings.map((r) => [r.hole, r.parent]), [[false, -1], [true, 0], [false, 1]]);
  assert.deepEqual(rings[0].points, [0, 0, 5, 0, 5, 5, 0, 5]);
  // The hole runs anticlockwise on screen (negative area), the outer borders clockwise.
  assert.deepEqual(rings.map((r) => ringArea2(r.points) / 2), [25, -9, 1]);

  // Two pixels touching at a corner are one 8-connected component: one border through the
  // pinch; the background around them is one 4-connected region, so no hole.
  const pinch = fromRows(["#.", ".#"]);
  const p = findContours(pinch.mask, 2, 2);
  assert.deepEqual(p.length, 1);
  assert.deepEqual(ringArea2(p[0].points) / 2, 2);
  // Diagonal background pixels inside foreground are two holes (4-connected background).
  const twoHoles = fromRows(["####", "#.##", "##.#", "####"]);
  const t = findContours(twoHoles.mask, 4, 4);
  assert.deepEqual(t.map((r) => [r.hole, r.parent]), [[false, -1], [true, 0], [true, 0]]);
});

Deno.test("maskToPolygons: exact at tolerance 0 on varied masks (rasterized back, IoU 1)", () => {
  for (const { name, mask, width, height } of variedMasks()) {
    const polys = maskToPolygons(mask, width, height, 0);
    const back = rasterizeEvenOdd(polys.segmentation, width, height);
    assert.deepEqual(iou(back, mask), 1, name);
    assert.ok(back.every((v, i) => v === (mask[i] ? 1 : 0)), name);
    // Every vertex is on the pixel grid's edges (a half-integer in x or in y) inside the image.
    for (const ring of polys.segmentation) {
      for (let i = 0; i < ring.length; i += 2) {
        const [x, y] = [ring[i], ring[i + 1]];
        assert.ok(Number.isInteger(2 * x) && Number.isInteger(2 * y), name);
        assert.ok(Number.isInteger(x) !== Number.isInteger(y), `${name}: ${x}, ${y}`);
        assert.ok(x >= 0 && x <= width && y >= 0 && y <= height, name);
      }
    }
  }
});

Deno.test("maskToPolygons: default simplification keeps IoU >= 0.98 with fewer corners", () => {
  for (const { name, mask, width, height } of variedMasks()) {
    const exact = maskToPolygons(mask, width, height, 0);
    const simple = maskToPolygons(mask, width, height, DEFAULT_POLYGON_TOLERANCE);
    assert.deepEqual(simple.parents, exact.parents, name);
    assert.deepEqual(simple.holes, exact.holes, name);
    const back = rasterizeEvenOdd(simple.segmentation, width, height);
    const score = iou(back, mask);
    assert.ok(score >= 0.98, `${name}: IoU ${score.toFixed(4)} < 0.98`);
    const corners = (p: number[][]) => p.reduce((s, r) => s + r.length / 2, 0);
    assert.ok(corners(simple.segmentation) <= corners(exact.segmentation), name);
    if (name === "disk") {
      assert.ok(corners(simple.segmentation) < corners(exact.segmentation) / 3, name);
    }
  }
});

Deno.test("simplifyRing: every dropped corner within tolerance; lone pixel kept", () => {
  const random = rng(3);
  const ring: number[] = [];
  for (let i = 0; i < 200; i++) {
    const a = (i / 200) * 2 * Math.PI, r = 50 + random() * 3;
    ring.push(Math.round(100 + r * Math.cos(a)), Math.round(100 + r * Math.sin(a)));
  }
  const tol = 2;
  const s = simplifyRing(ring, tol);
  assert.ok(s.length < ring.length);
  const dist = (px: number, py: number, poly: number[]) => {
    let best = Infinity;
    for (let i = 0; i < poly.length; i += 2) {
      const j = (i + 2) % poly.length;
      const ax = poly[i], ay = poly[i + 1], bx = poly[j], by = poly[j + 1];
      const dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
      const t = l2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / l2)) : 0;
      best = Math.min(best, Math.hypot(ax + t * dx - px, ay + t * dy - py));
    }
    return best;
  };
  for (let i = 0; i < ring.length; i += 2) {
    assert.ok(dist(ring[i], ring[i + 1], s) <= tol + 1e-9, `corner ${i / 2}`);
  }
  assert.deepEqual(simplifyRing([1, 1, 2, 1, 2, 2, 1, 2], 5), [1, 1, 2, 1, 2, 2, 1, 2]);
});

Deno.test("joinRings / yoloSegLine: one polygon per object that fills like its rings", () => {
  for (const { name, mask, width, height } of variedMasks()) {
    const polys = maskToPolygons(mask, width, height, 0);
    const joined = joinRings(polys.segmentation);
    assert.deepEqual(rasterizeEvenOdd([joined], width, height), mask, name);
    const line = yoloSegLine(3, polys.segmentation, width, height);
    const [cls, ...coords] = line.split(" ");
    assert.deepEqual(cls, "3");
    assert.deepEqual(coords.length, joined.length);
    coords.forEach((c, i) => {
      const v = Number(c);
      assert.ok(v >= 0 && v <= 1, `${name}: ${c}`);
      assert.ok(Math.abs(v * (i % 2 ? height : width) - joined[i]) < 1e-3, name);
    });
  }
  assert.deepEqual(yoloSegLine(0, [], 10, 10), "");
});

Deno.test("maskToPolygons: refuses a wrong size or tolerance", () => {
  assert.ok(maskToPolygons(new Uint8Array(0), 0, 0).segmentation.length === 0);
  let threw = false;
  try {
    maskToPolygons(new Uint8Array(5), 2, 2);
  } catch (e) {
    threw = e instanceof RangeError;
  }
  assert.ok(threw);
  threw = false;
  try {
    maskToPolygons(new Uint8Array(4), 2, 2, -1);
  } catch (e) {
    threw = e instanceof RangeError;
  }
  assert.ok(threw);
});

Deno.test("findContours: random noise (pinches everywhere): exact, nested, oriented", () => {
  const random = rng(11);
  for (let t = 0; t < 300; t++) {
    const w = 1 + Math.floor(random() * 14), h = 1 + Math.floor(random() * 11);
    const p = random();
    const mask = new Uint8Array(w * h).map(() => random() < p ? 1 : 0);
    const rings = findContours(mask, w, h);
    const name = `case ${t} (${w}x${h})`;
    assert.deepEqual(rasterizeEvenOdd(rings.map((r) => r.points), w, h), mask, name);
    // Corners cut (every pinch cut twice), and all rings joined into one: still exact.
    const cut = maskToPolygons(mask, w, h, 0).segmentation;
    assert.deepEqual(rasterizeEvenOdd(cut, w, h), mask, `${name}: corners cut`);
    assert.deepEqual(rasterizeEvenOdd([joinRings(cut)], w, h), mask, `${name}: joined`);
    rings.forEach((r, i) => {
      const area = ringArea2(r.points);
      assert.ok(r.hole ? area < 0 : area > 0, `${name}: ring ${i} orientation`);
      if (r.parent < 0) {
        assert.equal(r.hole, false, `${name}: a top-level ring is an outer border`);
        return;
      }
      const parent = rings[r.parent];
      assert.notEqual(r.hole, parent.hole, `${name}: ring ${i} alternates with its parent`);
      // What the ring encloses lies inside what its parent encloses.
      const inner = rasterizeEvenOdd([r.points], w, h);
      const outer = rasterizeEvenOdd([parent.points], w, h);
      assert.ok(inner.every((v, k) => !v || outer[k]), `${name}: ring ${i} inside ${r.parent}`);
    });
  }
});
