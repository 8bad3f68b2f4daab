/**
 * Draws prompts on an RGBA picture (the segment command's overlay.png), so the file shows what
 * was asked: foreground points as green dots, background points as red dots, boxes as yellow
 * outlines, each with a dark rim that keeps it visible on any photo. Sizes grow with the photo
 * (about 1% of its shorter side).
 */

export const FOREGROUND_COLOUR: readonly [number, number, number] = [0, 220, 0];
export const BACKGROUND_COLOUR: readonly [number, number, number] = [230, 0, 0];
export const BOX_COLOUR: readonly [number, number, number] = [255, 220, 0];
const RIM: readonly [number, number, number] = [0, 0, 0];

export interface PromptMarks {
  points: readonly (readonly [number, number])[];
  labels: readonly number[];
  boxes: readonly (readonly [number, number, number, number])[];
}

export function drawPrompts(
  rgba: Uint8Array | Uint8ClampedArray,
  width: number,
  height: number,
  marks: PromptMarks,
): void {
  const set = (x: number, y: number, c: readonly number[]) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const i = 4 * (y * width + x);
    rgba[i] = c[0];
    rgba[i + 1] = c[1];
    rgba[i + 2] = c[2];
    rgba[i + 3] = 255;
  };
  const unit = Math.max(1, Math.round(Math.min(width, height) / 100));
  // Boxes: a line `unit` px wide on the box edge, a 1-px rim on either side.
  const rect = (x0: number, y0: number, x1: number, y1: number, c: readonly number[]) => {
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) set(x, y, c);
  };
  for (const [bx0, by0, bx1, by1] of marks.boxes) {
    const [x0, y0, x1, y1] = [bx0, by0, bx1, by1].map(Math.round);
    const edges = (grow: number, c: readonly number[]) => {
      const h = Math.floor(unit / 2) + grow;
      rect(x0 - h, y0 - h, x1 + h, y0 + h, c);
      rect(x0 - h, y1 - h, x1 + h, y1 + h, c);
      rect(x0 - h, y0 - h, x0 + h, y1 + h, c);
      rect(x1 - h, y0 - h, x1 + h, y1 + h, c);
    };
    edges(1, RIM);
    edges(0, BOX_COLOUR);
  }
  // Points: a filled disc of radius 2 units, a 1-px rim around it.
  const radius = 2 * unit;
  marks.points.forEach(([px, py], i) => {
    const cx = Math.round(px), cy = Math.round(py);
    const colour = marks.labels[i] === 0 ? BACKGROUND_COLOUR : FOREGROUND_COLOUR;
    for (let dy = -radius - 1; dy <= radius + 1; dy++) {
      for (let dx = -radius - 1; dx <= radius + 1; dx++) {
        const d2 = dx * dx + dy * dy;
        if (d2 <= radius * radius) set(cx + dx, cy + dy, colour);
        else if (d2 <= (radius + 1) * (radius + 1)) set(cx + dx, cy + dy, RIM);
      }
    }
  });
}
