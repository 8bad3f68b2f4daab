/**
 * Polygons of binary masks: the borders of a mask traced along pixel edges, their nesting
 * (outer borders, holes, islands in holes), Douglas-Peucker simplification, and the COCO and
 * YOLO-seg forms.
 *
 * Borders run along pixel edges ("cracks"), not through pixel centres: pixel (x, y) is the
 * square [x, x+1] x [y, y+1], and a border's vertices are pixel corners. So a polygon filled
 * even-odd at pixel centres gives back exactly its mask (before simplification), thin shapes
 * included: a one-pixel line is a thin rectangle, not a line of zero area.
 *
 * The foreground is 8-connected (pixels touching at a corner belong to one component, as in
 * OpenCV's findContours) and the background 4-connected. Tracing and nesting follow Suzuki &
 * Abe (1985), "Topological structural analysis of digitized binary images by border
 * following", on cracks: a raster scan meets each border first at its top-left vertical edge,
 * an outer border at a background-to-foreground step and a hole at a foreground-to-background
 * step, and the border last crossed on the same row (their LNBD) gives the parent.
 *
 * Masks are row-major `Uint8Array`s, nonzero = foreground, `width * height` long.
 */

/** One closed border: its corners, in order, as pixel-corner coordinates. */
export interface Ring {
  /** Flat [x0, y0, x1, y1, ...]; the first corner is not repeated at the end. */
  points: number[];
  /** True for a hole's border (background inside a foreground component). */
  hole: boolean;
  /** Index of the enclosing ring (an outer border's hole, or a hole's outer border), -1 none. */
  parent: number;
}

// Directions in image coordinates (y down): east, south, west, north.
const DX = [1, 0, -1, 0];
const DY = [0, 1, 0, -1];
const EAST = 0, SOUTH = 1, NORTH = 3;

/**
 * Every border of the mask, outer borders and holes, in the order a raster scan meets them.
 * An outer border runs clockwise on screen (foreground on its right), a hole anticlockwise.
 */
export function findContours(mask: Uint8Array, width: number, height: number): Ring[] {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`findContours: bad size ${width}x${height}`);
  }
  if (mask.length !== width * height) {
    throw new RangeError(
      `findContours: mask has ${mask.length} pixels, expected ${width}x${height}`,
    );
  }
  const fg = (x: number, y: number) =>
    x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] !== 0;
  // The ring of each vertical edge (x, y)-(x, y+1), -1 until traced.
  const vRing = new Int32Array((width + 1) * height).fill(-1);
  const rings: Ring[] = [];

  // The edge leaving vertex (x, y) in direction d is a border when the pixel on its right
  // (on screen, y down) is foreground and the one on its left background.
  const rightPixelFg = (x: number, y: number, d: number) =>
    d === EAST ? fg(x, y) : d === SOUTH ? fg(x - 1, y) : d === 2 ? fg(x - 1, y - 1) : fg(x, y - 1);
  const leftPixelFg = (x: number, y: number, d: number) =>
    d === EAST ? fg(x, y - 1) : d === SOUTH ? fg(x, y) : d === 2 ? fg(x - 1, y) : fg(x - 1, y - 1);
  const isBorder = (x: number, y: number, d: number) =>
    rightPixelFg(x, y, d) && !leftPixelFg(x, y, d);

  function trace(x0: number, y0: number, d0: number, id: number): number[] {
    const points: number[] = [];
    let x = x0, y = y0, d = d0;
    do {
      if (d === SOUTH) vRing[y * (width + 1) + x] = id;
      else if (d === NORTH) vRing[(y - 1) * (width + 1) + x] = id;
      x += DX[d];
      y += DY[d];
      // Left turn first: at a vertex where two foreground pixels touch diagonally, the
      // border goes on around the other one (8-connected foreground).
      const left = (d + 3) & 3, right = (d + 1) & 3;
      let next: number;
      if (isBorder(x, y, left)) next = left;
      else if (isBorder(x, y, d)) next = d;
      else if (isBorder(x, y, right)) next = right;
      else throw new Error(`findContours: border lost at (${x}, ${y})`); // cannot happen
      if (next !== d) points.push(x, y);
      d = next;
    } while (!(x === x0 && y === y0 && d === d0));
    // The start vertex is a corner unless the border passes it straight.
    return points;
  }

  for (let y = 0; y < height; y++) {
    let lastRing = -1; // the border last crossed on this row (Suzuki & Abe's LNBD)
    for (let x = 0; x <= width; x++) {
      const left = fg(x - 1, y), right = fg(x, y);
      if (left === right) continue;
      const known = vRing[y * (width + 1) + x];
      if (known >= 0) {
        lastRing = known;
        continue;
      }
      const hole = left; // foreground -> background: the left edge of a hole
      let parent: number;
      if (lastRing < 0) parent = -1;
      else if (rings[lastRing].hole === hole) parent = rings[lastRing].parent;
      else parent = lastRing;
      const id = rings.length;
      rings.push({ points: [], hole, parent });
      // An outer border's left edge is walked northwards (foreground east of it), a hole's
      // left edge southwards (foreground west of it).
      rings[id].points = hole ? trace(x, y, SOUTH, id) : trace(x, y + 1, NORTH, id);
      lastRing = id;
    }
  }
  return rings;
}

/** Twice the signed area of a flat ring (positive for clockwise on screen, y down). */
export function ringArea2(points: readonly number[]): number {
  let s = 0;
  const n = points.length / 2;
  for (let i = 0; i < n; i++) {
    const j = (i + 1) % n;
    s += points[2 * i] * points[2 * j + 1] - points[2 * j] * points[2 * i + 1];
  }
  return s;
}

/** Squared distance from p to the segment a-b. */
function segmentDist2(
  px: number,
  py: number,
  ax: number,
  ay: number,
  bx: number,
  by: number,
): number {
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  const ex = ax + t * dx - px, ey = ay + t * dy - py;
  return ex * ex + ey * ey;
}

/**
 * Douglas-Peucker on a closed ring: every dropped corner lies within `tolerance` pixels of
 * the simplified border. The ring is split at its first corner and the corner farthest from
 * it, and each half simplified. A ring that would fall below three corners is kept whole (a
 * lone pixel stays a square instead of vanishing).
 */
export function simplifyRing(points: readonly number[], tolerance: number): number[] {
  const n = points.length / 2;
  if (!(tolerance > 0) || n <= 3) return points.slice();
  let far = 0, farD = -1;
  for (let i = 1; i < n; i++) {
    const dx = points[2 * i] - points[0], dy = points[2 * i + 1] - points[1];
    const d = dx * dx + dy * dy;
    if (d > farD) {
      farD = d;
      far = i;
    }
  }
  const keep = new Uint8Array(n);
  keep[0] = 1;
  keep[far] = 1;
  const tol2 = tolerance * tolerance;
  // Spans [a, b] of corner indices, b possibly n (= corner 0 again).
  const stack: [number, number][] = [[0, far], [far, n]];
  while (stack.length) {
    const [a, b] = stack.pop()!;
    const ax = points[2 * a], ay = points[2 * a + 1];
    const bi = b % n;
    const bx = points[2 * bi], by = points[2 * bi + 1];
    let worst = -1, worstD = tol2;
    for (let i = a + 1; i < b; i++) {
      const d = segmentDist2(points[2 * i], points[2 * i + 1], ax, ay, bx, by);
      if (d > worstD) {
        worstD = d;
        worst = i;
      }
    }
    if (worst >= 0) {
      keep[worst] = 1;
      stack.push([a, worst], [worst, b]);
    }
  }
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (keep[i]) out.push(points[2 * i], points[2 * i + 1]);
  return out.length >= 6 ? out : points.slice();
}

/**
 * A border's corners replaced by the midpoints of the unit edges on either side of each corner:
 * each corner is cut by a diagonal half a pixel long. Filled at pixel centres this covers the
 * same pixels (no pixel centre lies in a cut-off or added triangle), and a staircase becomes
 * the straight line through its middle, so Douglas-Peucker simplifies a jagged border without
 * biasing it inwards or outwards.
 */
export function cutCorners(points: readonly number[]): number[] {
  const n = points.length / 2;
  const out: number[] = [];
  const push = (x: number, y: number) => {
    const m = out.length;
    if (m >= 2 && out[m - 2] === x && out[m - 1] === y) return;
    out.push(x, y);
  };
  for (let i = 0; i < n; i++) {
    const p = (i + n - 1) % n, q = (i + 1) % n;
    const x = points[2 * i], y = points[2 * i + 1];
    const inX = Math.sign(x - points[2 * p]), inY = Math.sign(y - points[2 * p + 1]);
    const outX = Math.sign(points[2 * q] - x), outY = Math.sign(points[2 * q + 1] - y);
    push(x - inX / 2, y - inY / 2);
    push(x + outX / 2, y + outY / 2);
  }
  if (out.length >= 4 && out[0] === out[out.length - 2] && out[1] === out[out.length - 1]) {
    out.length -= 2;
  }
  return out;
}

/** The polygons of one mask in COCO's form, with the nesting COCO's form cannot say. */
export interface MaskPolygons {
  /**
   * COCO polygon segmentation: every ring (outer borders and holes) as a flat
   * [x0, y0, x1, y1, ...] list in pixel coordinates (pixel (x, y) spans [x, x+1] x [y, y+1]). Filling all of them together
   * even-odd gives the mask; pycocotools takes the union of the rings, so it fills holes.
   */
  segmentation: number[][];
  /** For each ring of `segmentation`: -1 for an outer border, else the ring it is a hole of
   * (or, for an island inside a hole, the hole). */
  parents: number[];
  /** For each ring: true when it is a hole's border. */
  holes: boolean[];
}

/** Half a pixel: several times fewer corners, and IoU >= 0.98 with the mask even for small shapes. */
export const DEFAULT_POLYGON_TOLERANCE = 0.5;

/**
 * A mask's borders (`findContours`), corners cut (`cutCorners`: vertices at x.5 or y.5) and
 * simplified with Douglas-Peucker at `tolerance` pixels; at 0 they fill back to the mask
 * exactly.
 */
export function maskToPolygons(
  mask: Uint8Array,
  width: number,
  height: number,
  tolerance: number = DEFAULT_POLYGON_TOLERANCE,
): MaskPolygons {
  if (!(tolerance >= 0) || !Number.isFinite(tolerance)) {
    throw new RangeError(`polygon tolerance must be a finite number >= 0, got ${tolerance}`);
  }
  const rings = findContours(mask, width, height);
  return {
    segmentation: rings.map((r) => simplifyRing(cutCorners(r.points), tolerance)),
    parents: rings.map((r) => r.parent),
    holes: rings.map((r) => r.hole),
  };
}

/**
 * All rings joined into one ring by zero-width bridges (each ring entered and left through
 * the same pair of corners, the closest pair to what is joined so far), as YOLO-seg's one
 * polygon per object needs. Filled even-odd, the joined ring covers what the rings covered:
 * a bridge is crossed twice at the same place.
 */
export function joinRings(rings: readonly (readonly number[])[]): number[] {
  const nonEmpty = rings.filter((r) => r.length >= 6);
  if (nonEmpty.length === 0) return [];
  let joined = nonEmpty[0].slice();
  for (let k = 1; k < nonEmpty.length; k++) {
    const ring = nonEmpty[k];
    let bestI = 0, bestJ = 0, bestD = Infinity;
    for (let i = 0; i < joined.length; i += 2) {
      for (let j = 0; j < ring.length; j += 2) {
        const dx = joined[i] - ring[j], dy = joined[i + 1] - ring[j + 1];
        const d = dx * dx + dy * dy;
        if (d < bestD) {
          bestD = d;
          bestI = i;
          bestJ = j;
        }
      }
    }
    // ... a_i, b_j, b_j+1, ..., b_j-1, b_j, a_i, a_i+1 ...
    const rotated = [...ring.slice(bestJ), ...ring.slice(0, bestJ), ring[bestJ], ring[bestJ + 1]];
    joined = [
      ...joined.slice(0, bestI + 2),
      ...rotated,
      ...joined.slice(bestI),
    ];
  }
  return joined;
}

/**
 * One YOLO-seg label line: `class x0 y0 x1 y1 ...`, corners divided by the image's width and
 * height, all rings of the object joined into one (`joinRings`). Empty for an empty mask.
 */
export function yoloSegLine(
  classIndex: number,
  rings: readonly (readonly number[])[],
  width: number,
  height: number,
): string {
  const joined = joinRings(rings);
  if (joined.length === 0) return "";
  const coords = joined.map((v, i) => {
    const t = v / (i % 2 === 0 ? width : height);
    return Number(t.toFixed(6)).toString();
  });
  return `${classIndex} ${coords.join(" ")}`;
}
