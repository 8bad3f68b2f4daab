/**
 * Click latency of the page (#23): the page's own decoder on the browser's WebGPU beside the
 * server's round trip, on the same model, photo and clicks, in headless Chromium.
 *
 *   deno task bench:page [--model NAME|PATH] [--image PHOTO] [--clicks N] [--json FILE]
 *
 * For each click the page reports (src/web/app.js) `decodeMs` (the page: its decoder from the
 * prompt to the masks read back; the server: the /segment round trip) and `clickMs` (that plus
 * drawing the mask). The first click of each side is a warm-up (pipelines compile); the table
 * gives medians of the others, with the adapter each side ran on. Chromium's WebGPU is
 * SwiftShader here (CPU), as the page tests use it.
 */
import { chromium, type Page } from "playwright-core";
import {
  numberFlag,
  parseFlags,
  requireInputFile,
  runCli,
  UsageError,
  wantsHelp,
} from "../src/cli/args.ts";
import { createApp } from "../src/server/app.ts";
import { loadSamEngine } from "../src/server/sam_engine.ts";
import { median } from "./peer/ort_peer.ts";
import { formatPageRows, type PageClickRow } from "./report/page_rows.ts";

export type { PageClickRow };

const USAGE = `Usage: deno task bench:page [options]

  --model NAME|PATH   model the server loads (default sam-tiny)
  --image PHOTO       PNG or JPEG to click on (default tests/fixtures/sam-tiny/image.png)
  --clicks N          timed clicks per side after one warm-up (default 5)
  --json FILE         also write the measurements as JSON
  -h, --help          this text

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, bad value, missing
photo).`;

/** The Chromium this machine has (Debian's package). */
export const CHROMIUM = "/usr/bin/chromium";
const WEBGPU_FLAGS = [
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-webgpu-adapter=swiftshader",
];

/** The photo clicked on by default: the bundled sam-tiny fixture's. */
export const DEFAULT_PAGE_IMAGE =
  new URL("../tests/fixtures/sam-tiny/image.png", import.meta.url).pathname;

async function measure(
  url: string,
  image: string,
  clicks: number,
  side: "page" | "server",
  serverAdapter: string,
): Promise<PageClickRow> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--no-first-run", ...WEBGPU_FLAGS],
  });
  try {
    const page: Page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    page.setDefaultTimeout(300_000);
    // The server side: the same page with WebGPU taken away.
    if (side === "server") await page.addInitScript("delete Navigator.prototype.gpu;");
    await page.goto(url);
    await page.waitForFunction(`/Ready/.test(document.getElementById("status").textContent)`);
    await page.setInputFiles("#file", image);
    await page.waitForFunction(`document.body.dataset.decoder !== undefined`);
    const decoder = await page.evaluate(`document.body.dataset.decoder`);
    if (decoder !== (side === "page" ? "browser" : "server")) {
      const status = await page.locator("#status").textContent();
      throw new Error(`the ${side} side decodes in the ${decoder}: ${status}`);
    }
    const box = (await page.locator("#marks").boundingBox())!;
    const decode: number[] = [], click: number[] = [];
    for (let i = 0; i <= clicks; i++) {
      // Spread over the photo, one point each (Clear between: every click is a first click).
      const fx = 0.2 + 0.6 * ((i * 0.618) % 1), fy = 0.3 + 0.4 * ((i * 0.382) % 1);
      await page.evaluate(`clearPrompts(); delete document.body.dataset.maskArea`);
      await page.mouse.click(box.x + fx * box.width, box.y + fy * box.height);
      await page.waitForFunction(`document.body.dataset.maskArea !== undefined`);
      if (i === 0) continue; // warm-up
      decode.push(Number(await page.evaluate(`document.body.dataset.decodeMs`)));
      click.push(Number(await page.evaluate(`document.body.dataset.clickMs`)));
    }
    const adapter = side === "page"
      ? `${await page.evaluate(`document.body.dataset.pageAdapter`)} (Chromium)`
      : serverAdapter;
    return { where: side, adapter, decodeMs: median(decode), clickMs: median(click), clicks };
  } finally {
    await browser.close();
  }
}

async function main(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(USAGE);
    return 0;
  }
  const { values, positionals } = parseFlags(argv, {
    model: { type: "string" },
    image: { type: "string" },
    clicks: { type: "string" },
    json: { type: "string" },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (values.model === "") throw new UsageError("--model needs a value");
  const model = values.model ?? "sam-tiny";
  const image = values.image ?? DEFAULT_PAGE_IMAGE;
  const clicks = numberFlag("clicks", values.clicks ?? "5", { min: 1, max: 1000, integer: true });
  const json = values.json;
  await requireInputFile(image, "--image");
  await requireInputFile(CHROMIUM, "Chromium");
  const { model: name, rows } = await measurePageClicks({ model, image, clicks });
  console.log(`Click latency, ${name}, ${image.split("/").pop()}\n`);
  console.log(formatPageRows(rows));
  if (json) {
    await Deno.writeTextFile(
      json,
      JSON.stringify({ model: name, date: new Date().toISOString(), rows }, null, 2),
    );
  }
  return 0;
}

/**
 * Serves `model` on 127.0.0.1 and clicks `clicks` times (after one warm-up) on `image` in
 * headless Chromium, with the page decoding and with the server decoding. Used by this command
 * and by `deno task bench:report` (its page section).
 */
export async function measurePageClicks(
  opts: { model: string; image: string; clicks: number },
): Promise<{ model: string; rows: PageClickRow[] }> {
  const engine = await loadSamEngine(opts.model, { cacheBytes: 256 << 20, quiet: true });
  const app = createApp({ engine, log: () => {} });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
  try {
    const url = `http://127.0.0.1:${server.addr.port}/`;
    const rows = [
      await measure(url, opts.image, opts.clicks, "page", engine.info.adapter),
      await measure(url, opts.image, opts.clicks, "server", engine.info.adapter),
    ];
    return { model: engine.info.model, rows };
  } finally {
    await server.shutdown();
    engine.dispose();
  }
}

if (import.meta.main) await runCli("bench:page", () => main(Deno.args));
