/**
 * Label Studio's brush RLE (`value.format: "rle"` of a brushlabels result), the format of
 * thi.ng's rle-pack as label-studio-sdk's converter/brush.py writes it (`mask2rle`).
 *
 * The RLE packs the mask as RGBA, four 8-bit values a pixel (the mask value repeated: 0 or
 * 255), row-major. A bit stream, most significant bit of each byte first:
 *   32 bits   number of values (4 * width * height)
 *   5 bits    word size - 1 (8 bits: 7)
 *   4 x 4     the four run-length field widths - 1 (3, 4, 8 and 16 bits)
 *   then runs until every value is written, each:
 *     1 bit   1: one value repeated, 0: literal values
 *     2 bits  which run-length field width follows
 *     n bits  run length - 1
 *     then the value (word size bits) once, or each literal value
 * padded with 0 bits to whole bytes. The answer is the list of those bytes.
 */

const WORD_BITS = 8;
const RUN_FIELD_BITS = [3, 4, 8, 16];

class BitWriter {
  readonly bytes: number[] = [];
  private acc = 0;
  private n = 0;

  write(value: number, bits: number): void {
    for (let b = bits - 1; b >= 0; b--) {
      this.acc = (this.acc << 1) | (Math.floor(value / 2 ** b) & 1);
      if (++this.n === 8) {
        this.bytes.push(this.acc);
        this.acc = 0;
        this.n = 0;
      }
    }
  }

  finish(): number[] {
    if (this.n > 0) this.write(0, 8 - this.n);
    return this.bytes;
  }
}

/** One run of `length` copies of `value` (0..255), split at the widest field's 65536. */
function writeRun(out: BitWriter, value: number, length: number): void {
  while (length > 0) {
    const n = Math.min(length, 2 ** 16);
    if (n === 1) {
      out.write(0, 1); // a literal run of one value
      out.write(0, 2);
      out.write(0, RUN_FIELD_BITS[0]);
    } else {
      const field = RUN_FIELD_BITS.findIndex((bits) => n <= 2 ** bits);
      out.write(1, 1);
      out.write(field, 2);
      out.write(n - 1, RUN_FIELD_BITS[field]);
    }
    out.write(value, WORD_BITS);
    length -= n;
  }
}

/** Label Studio's brush RLE of a row-major mask (nonzero = set) of width * height pixels. */
export function maskToBrushRle(mask: Uint8Array, width: number, height: number): number[] {
  if (mask.length !== width * height) {
    throw new RangeError(`maskToBrushRle: ${mask.length} pixels for ${width}x${height}`);
  }
  const out = new BitWriter();
  out.write(4 * width * height, 32);
  out.write(WORD_BITS - 1, 5);
  for (const bits of RUN_FIELD_BITS) out.write(bits - 1, 4);
  let i = 0;
  while (i < mask.length) {
    const set = mask[i] !== 0;
    let j = i + 1;
    while (j < mask.length && (mask[j] !== 0) === set) j++;
    writeRun(out, set ? 255 : 0, 4 * (j - i));
    i = j;
  }
  return out.finish();
}
