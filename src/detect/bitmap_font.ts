/**
 * A tiny built-in 5 x 7 bitmap font for labels on overlays (no font files, no text
 * rendering library). Upper-case letters, digits and a little punctuation; lower case is
 * drawn as upper case, anything else as "?".
 */

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character, in font pixels (one column of spacing). */
export const GLYPH_ADVANCE = 6;

// Rows top to bottom, "#" = ink, separated by "|".
const GLYPHS: Record<string, string> = {
  "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#",
  "B": "####.|#...#|#...#|####.|#...#|#...#|####.",
  "C": ".###.|#...#|#....|#....|#....|#...#|.###.",
  "D": "####.|#...#|#...#|#...#|#...#|#...#|####.",
  "E": "#####|#....|#....|####.|#....|#....|#####",
  "F": "#####|#....|#....|####.|#....|#....|#....",
  "G": ".###.|#...#|#....|#.###|#...#|#...#|.####",
  "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#",
  "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
  "J": "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
  "K": "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
  "L": "#....|#....|#....|#....|#....|#....|#####",
  "M": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
  "N": "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#",
  "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
  "P": "####.|#...#|#...#|####.|#....|#....|#....",
  "Q": ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
  "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
  "S": ".####|#....|#....|.###.|....#|....#|####.",
  "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..",
  "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
  "V": "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",
  "W": "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",
  "X": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
  "Y": "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
  "Z": "#####|....#|...#.|..#..|.#...|#....|#####",
  "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
  "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
  "2": ".###.|#...#|....#|...#.|..#..|.#...|#####",
  "3": "#####|...#.|..#..|...#.|....#|#...#|.###.",
  "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
  "5": "#####|#....|####.|....#|....#|#...#|.###.",
  "6": "..##.|.#...|#....|####.|#...#|#...#|.###.",
  "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
  "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
  "9": ".###.|#...#|#...#|.####|....#|...#.|.##..",
  ".": ".....|.....|.....|.....|.....|.##..|.##..",
  ",": ".....|.....|.....|.....|.##..|..#..|.#...",
  "-": ".....|.....|.....|#####|.....|.....|.....",
  "_": ".....|.....|.....|.....|.....|.....|#####",
  ":": ".....|.##..|.##..|.....|.##..|.##..|.....",
  "%": "##...|##..#|...#.|..#..|.#...|#..##|...##",
  "#": ".#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.",
  "(": "...#.|..#..|.#...|.#...|.#...|..#..|...#.",
  ")": ".#...|..#..|...#.|...#.|...#.|..#..|.#...",
  "/": ".....|....#|...#.|..#..|.#...|#....|.....",
  "?": ".###.|#...#|....#|...#.|..#..|.....|..#..",
  " ": ".....|.....|.....|.....|.....|.....|.....",
};

/** Each glyph as GLYPH_HEIGHT rows of GLYPH_WIDTH bits (bit 4 = leftmost column). */
const BITMAPS = new Map<string, number[]>(
  Object.entries(GLYPHS).map(([ch, rows]) => [
    ch,
    rows.split("|").map((row) =>
      [...row].reduce((bits, c) => (bits << 1) | (c === "#" ? 1 : 0), 0)
    ),
  ]),
);

/** The rows of a character's glyph. */
export function glyph(ch: string): number[] {
  return BITMAPS.get(ch.toUpperCase()) ?? BITMAPS.get("?")!;
}

/** Width and height in image pixels of `text` drawn at `scale`. */
export function textSize(text: string, scale: number): { width: number; height: number } {
  const n = [...text].length;
  return {
    width: n ? ((n - 1) * GLYPH_ADVANCE + GLYPH_WIDTH) * scale : 0,
    height: GLYPH_HEIGHT * scale,
  };
}

/**
 * Calls `plot(x, y)` for every ink pixel of `text` with its top-left corner at (x0, y0), each
 * font pixel a scale x scale square. The caller clips.
 */
export function rasterizeText(
  text: string,
  x0: number,
  y0: number,
  scale: number,
  plot: (x: number, y: number) => void,
): void {
  let cx = x0;
  for (const ch of text) {
    const rows = glyph(ch);
    for (let r = 0; r < GLYPH_HEIGHT; r++) {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (!((rows[r] >> (GLYPH_WIDTH - 1 - c)) & 1)) continue;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) plot(cx + c * scale + dx, y0 + r * scale + dy);
        }
      }
    }
    cx += GLYPH_ADVANCE * scale;
  }
}
