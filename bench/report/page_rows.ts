/**
 * The page section (#23): click latency in the browser page (its own WebGPU decoder, decode
 * only and decode plus drawing) beside the server round trip, each on the adapter it ran on,
 * measured by bench/page_click.ts in headless Chromium.
 */
import {
  CHROMIUM,
  DEFAULT_PAGE_IMAGE,
  formatPageRows,
  measurePageClicks,
  type PageClickRow,
} from "../page_click.ts";
import { log } from "./env.ts";
import { firstLine } from "./measure.ts";
import type { ReportOptions } from "./options.ts";

export type PageResult =
  | { status: "ok"; model: string; image: string; clicks: number; rows: PageClickRow[] }
  | { status: "not measured"; reason: string };

export async function pageSection(opts: ReportOptions): Promise<PageResult> {
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
