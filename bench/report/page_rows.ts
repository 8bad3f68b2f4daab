/**
 * The page section (#23): click latency in the browser page (its own WebGPU decoder, decode
 * only and decode plus drawing) beside the server round trip, each on the adapter it ran on,
 * measured by bench/page_click.ts in headless Chromium.
 */
import { log } from "./env.ts";
import { firstLine } from "./measure.ts";
import type { ReportOptions } from "./options.ts";

/** One side's medians: the page's own decoder, or the server round trip. */
export interface PageClickRow {
  where: "page" | "server";
  adapter: string;
  decodeMs: number;
  clickMs: number;
  clicks: number;
}

/** The rows as a markdown table. */
export function formatPageRows(rows: readonly PageClickRow[]): string {
  const lines = [
    "| decoder | adapter | decode (ms) | decode + draw (ms) | clicks |",
    "|---|---|---:|---:|---:|",
  ];
  for (const r of rows) {
    const what = r.where === "page" ? "in the page" : "server round trip";
    lines.push(
      `| ${what} | ${r.adapter} | ${r.decodeMs.toFixed(1)} | ${
        r.clickMs.toFixed(1)
      } | ${r.clicks} |`,
    );
  }
  return lines.join("\n");
}

export type PageResult =
  | { status: "ok"; model: string; image: string; clicks: number; rows: PageClickRow[] }
  | { status: "not measured"; reason: string };

/** Runs bench/page_click.ts's measurement (loaded here: Playwright reads /proc at import). */
export async function pageSection(opts: ReportOptions): Promise<PageResult> {
  const { CHROMIUM, DEFAULT_PAGE_IMAGE, measurePageClicks } = await import("../page_click.ts");
  try {
    Deno.statSync(CHROMIUM);
  } catch {
    return { status: "not measured", reason: `no Chromium at ${CHROMIUM}` };
  }
  try {
    log(`page: ${opts.pageModel}, ${opts.pageClicks} clicks a side in headless Chromium`);
    const { model, rows } = await measurePageClicks({
      model: opts.pageModel,
      image: DEFAULT_PAGE_IMAGE,
      clicks: opts.pageClicks,
    });
    return {
      status: "ok",
      model,
      image: DEFAULT_PAGE_IMAGE.split("/").pop()!,
      clicks: opts.pageClicks,
      rows,
    };
  } catch (e) {
    return { status: "not measured", reason: `failed: ${firstLine(e)}` };
  }
}

/** The section as markdown. */
export function formatPageSection(r: PageResult): string {
  const head = "### Click latency in the browser page";
  if (r.status !== "ok") return `${head}\n\nNot measured: ${r.reason}.\n`;
  return [
    head,
    "",
    `Model ${r.model} on ${r.image}, headless Chromium (WebGPU on SwiftShader unless the ` +
    "browser found a GPU). Medians of " +
    `${r.clicks} click${r.clicks > 1 ? "s" : ""} a side after one warm-up. In the page: its ` +
    "decoder from the prompt to the masks read back (decode), and that plus drawing the mask " +
    "(decode + draw). Server: the /segment round trip on 127.0.0.1, decoded on the server's " +
    "adapter, and that plus drawing.",
    "",
    formatPageRows(r.rows),
    "",
  ].join("\n");
}
