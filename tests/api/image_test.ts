import assert from "node:assert/strict";
import { Image } from "imagescript";
import {
  decodeImage,
  encodeMaskPng,
  encodeOverlayPng,
  ImageDecodeError,
  peekImageSize,
  pngRawSize,
} from "../../src/image.ts";
import { LOCAL_FIXTURES, sharedFixture } from "../util/fixtures.ts";
import { readNpy } from "../../src/util/npy.ts";

const tiny = new URL("sam-tiny/", LOCAL_FIXTURES);

Deno.test("decodeImage: the fixture PNG decodes to exactly input_image.npy", async () => {
  const image = await decodeImage(await Deno.readFile(new URL("image.png", tiny)));
  const golden = await readNpy(new URL("input_image.npy", tiny));
  assert.deepEqual([image.height, image.width, 3], golden.shape);
  assert.equal(image.channels, 3);
  assert.deepEqual(image.data, golden.data);
});

Deno.test("decodeImage: JPEG photos decode, header size agrees", async (t) => {
  const dog = sharedFixture("images/dog.jpg");
  if (!dog) {
    console.warn("SKIP: ../shared/fixtures/images is not present beside this checkout");
    return;
  }
  const bytes = await Deno.readFile(dog);
  const header = peekImageSize(bytes);
  assert.equal(header?.format, "jpeg");
  const image = await decodeImage(bytes);
  assert.equal(image.width, header!.width);
  assert.equal(image.height, header!.height);
  // A real photo is not one flat colour.
  const first = image.data[0];
  assert.ok(image.data.some((v) => v !== first));
  await t.step("a pixel limit below its size refuses it before decoding", async () => {
    await assert.rejects(
      () => decodeImage(bytes, { maxPixels: 1000 }),
      /over the limit of 1000 pixels/,
    );
  });
});

Deno.test("decodeImage refuses garbage, truncation and declared decompression bombs", async () => {
  await assert.rejects(() => decodeImage(new Uint8Array([1, 2, 3, 4])), ImageDecodeError);
  await assert.rejects(() => decodeImage(new Uint8Array(0)), /not a PNG or JPEG/);
  const png = await Deno.readFile(new URL("image.png", tiny));
  await assert.rejects(() => decodeImage(png.subarray(0, 20)), /truncated or has no IHDR/);
  await assert.rejects(() => decodeImage(png.subarray(0, 200)), /could not be decoded/);
  // A header that claims 100000 x 100000 pixels is refused from the header alone.
  const bomb = png.slice(0, 64);
  const view = new DataView(bomb.buffer);
  view.setUint32(16, 100000);
  view.setUint32(20, 100000);
  await assert.rejects(() => decodeImage(bomb), /10000000000 pixels is over the limit/);
  view.setUint32(16, 0);
  await assert.rejects(() => decodeImage(bomb), /empty image/);
  // A JPEG whose header ends before any frame.
  await assert.rejects(
    () => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10])),
    /JPEG is truncated/,
  );
});

Deno.test("mask and overlay PNGs round-trip through the decoder", async () => {
  const w = 7, h = 5;
  const mask = new Uint8Array(w * h).map((_, i) => (i % 3 === 0 ? 1 : 0));
  const decoded = await decodeImage(await encodeMaskPng(mask, w, h));
  for (let i = 0; i < w * h; i++) assert.equal(decoded.data[3 * i], mask[i] ? 255 : 0);
  const photo = { width: w, height: h, channels: 3 as const, data: new Uint8Array(w * h * 3) };
  const overlay = await decodeImage(await encodeOverlayPng(photo, [mask]));
  for (let i = 0; i < w * h; i++) {
    const tinted = overlay.data[3 * i] + overlay.data[3 * i + 1] + overlay.data[3 * i + 2] > 0;
    assert.equal(tinted, mask[i] === 1, `pixel ${i}`);
  }
  await assert.rejects(() => encodeMaskPng(mask, w, h + 1), /expected 7x6/);
});

Deno.test("decodeImage: a valid PNG that imagescript's decoder refuses is read through zlib", async () => {
  // imagescript encodes this 300x1 noise image; its own decoder then fails on the zlib stream
  // ("png: failed to decode (-8)"), which zlib itself reads.
  const w = 300;
  const png = new Image(w, 1);
  for (let i = 0; i < w; i++) {
    const v = (i * 2654435761 + 97) >>> 0;
    png.bitmap.set([v & 255, (v >> 8) & 255, (v >> 16) & 255, 255], 4 * i);
  }
  const bytes = new Uint8Array(await png.encode(1));
  await assert.rejects(Image.decode(bytes), /failed to decode/, "the codec's failure, as seen");
  const rgb = await decodeImage(bytes);
  assert.deepEqual([rgb.width, rgb.height], [w, 1]);
  for (let i = 0; i < w; i++) {
    const want = [...png.bitmap.subarray(4 * i, 4 * i + 3)];
    assert.deepEqual([...rgb.data.subarray(3 * i, 3 * i + 3)], want, `pixel ${i}`);
  }
  // Still refused: a PNG whose image data is not zlib at all.
  const broken = bytes.slice();
  const idat = String.fromCharCode(...broken).indexOf("IDAT");
  broken.fill(0x55, idat + 4, idat + 40);
  await assert.rejects(decodeImage(broken), ImageDecodeError);
});

Deno.test("pngRawSize: filter bytes and packed samples per row, Adam7 passes", () => {
  const ihdr = (w: number, h: number, depth: number, colour: number, interlace = 0) => {
    const b = new Uint8Array(13);
    const v = new DataView(b.buffer);
    v.setUint32(0, w);
    v.setUint32(4, h);
    b.set([depth, colour, 0, 0, interlace], 8);
    return b;
  };
  assert.equal(pngRawSize(ihdr(300, 1, 8, 6)), 1 + 1200);
  assert.equal(pngRawSize(ihdr(10, 3, 1, 0)), 3 * (1 + 2)); // 10 one-bit samples: 2 bytes
  assert.equal(pngRawSize(ihdr(5, 2, 16, 2)), 2 * (1 + 30));
  // 8x8 RGB interlaced: passes of 1x1, 1x1, 2x1, 2x2, 4x2, 4x4, 8x4 pixels.
  assert.equal(pngRawSize(ihdr(8, 8, 8, 2, 1)), 4 + 4 + 7 + 14 + 26 + 52 + 100);
  // 1x1 interlaced: only the first pass has a pixel.
  assert.equal(pngRawSize(ihdr(1, 1, 8, 0, 1)), 2);
  assert.equal(pngRawSize(ihdr(4, 4, 3, 2)), null); // no 3-bit depth
  assert.equal(pngRawSize(ihdr(4, 4, 8, 5)), null); // no colour type 5
  assert.equal(pngRawSize(new Uint8Array(12)), null);
});
