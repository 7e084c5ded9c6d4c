#!/usr/bin/env node
// Draws the site's images once with Debian's Chromium; the results are committed in
// marketing/static/, so neither the build nor the tests need a browser:
//   og-image.png          1200×630 social preview
//   apple-touch-icon.png  180×180 home-screen icon (also the JSON-LD logo)
//   favicon.ico           16, 32 and 48 px PNGs in an ICO container
// Run again after changing the logo: node marketing/make-images.ts
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Page } from 'playwright-core'

const OUT = fileURLToPath(new URL('./static/', import.meta.url))

const HEX = 'M16 2 28.1 9v14L16 30 3.9 23V9z'
const POLE = 'M11.5 8v16'
const FLAG = 'M11.5 8.6h10l-2.8 3.3 2.8 3.3h-10z'

/** The logo: a honey hexagon with a navy flag (the same drawing as in marketing/layout.ts). */
function mark (stroke: number): string {
  return `<path d="${HEX}" fill="#f2b233"/><path d="${POLE}" stroke="#16182d" stroke-width="${stroke}" stroke-linecap="round"/><path d="${FLAG}" fill="#16182d"/>`
}

function logo (size: number, background: string | null): string {
  return `<!doctype html><html><body style="margin:0;${background === null ? '' : `background:${background}`}">` +
    `<svg viewBox="${background === null ? '0 0 32 32' : '-4 -4 40 40'}" width="${size}" height="${size}" style="display:block">` +
    `${mark(2.4)}</svg></body></html>`
}

function ogImage (): string {
  const cells: string[] = []
  for (let row = 0; row < 7; row++) {
    for (let col = 0; col < 8; col++) {
      const x = 640 + col * 84 + (row % 2) * 42
      const y = -40 + row * 73
      const alpha = ((row * 7 + col * 3) % 5) / 20 + 0.05
      cells.push(`<path transform="translate(${x} ${y}) scale(2.6)" d="${HEX}" fill="#f2b233" fill-opacity="${alpha.toFixed(2)}"/>`)
    }
  }
  return `<!doctype html><html><head><style>
    body { margin: 0; width: 1200px; height: 630px; background: #16182d; color: #fff; font-family: Lato, "DejaVu Sans", sans-serif; overflow: hidden; position: relative; }
    svg.bg { position: absolute; inset: 0; }
    .text { position: absolute; left: 80px; top: 150px; width: 700px; }
    .brand { display: flex; align-items: center; gap: 24px; font-size: 76px; font-weight: 900; letter-spacing: -1px; }
    h1 { font-size: 50px; line-height: 1.15; margin: 44px 0 24px; font-weight: 700; }
    p { font-size: 30px; color: #f2b233; margin: 0; font-weight: 700; }
  </style></head><body>
    <svg class="bg" width="1200" height="630">${cells.join('')}</svg>
    <div class="text">
      <div class="brand"><svg viewBox="0 0 32 32" width="104" height="104">${mark(2.2)}</svg>CTFHive</div>
      <h1>Hosted CTFd servers for your capture-the-flag event</h1>
      <p>Your own server · HTTPS · live in minutes</p>
    </div>
  </body></html>`
}

async function shoot (page: Page, html: string, width: number, height: number, transparent: boolean): Promise<Buffer> {
  await page.setViewportSize({ width, height })
  await page.setContent(html)
  return page.screenshot({ type: 'png', omitBackground: transparent, clip: { x: 0, y: 0, width, height } })
}

/** An ICO file whose images are PNGs (every current browser reads these). */
export function icoFromPngs (images: Array<{ size: number, png: Buffer }>): Buffer {
  const header = Buffer.alloc(6)
  header.writeUInt16LE(0, 0)
  header.writeUInt16LE(1, 2)
  header.writeUInt16LE(images.length, 4)
  const entries: Buffer[] = []
  let offset = 6 + 16 * images.length
  for (const { size, png } of images) {
    const e = Buffer.alloc(16)
    e.writeUInt8(size >= 256 ? 0 : size, 0)
    e.writeUInt8(size >= 256 ? 0 : size, 1)
    e.writeUInt8(0, 2)
    e.writeUInt8(0, 3)
    e.writeUInt16LE(1, 4)
    e.writeUInt16LE(32, 6)
    e.writeUInt32LE(png.length, 8)
    e.writeUInt32LE(offset, 12)
    offset += png.length
    entries.push(e)
  }
  return Buffer.concat([header, ...entries, ...images.map((i) => i.png)])
}

async function main (): Promise<void> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
  })
  try {
    const page = await browser.newPage()
    writeFileSync(join(OUT, 'og-image.png'), await shoot(page, ogImage(), 1200, 630, false))
    writeFileSync(join(OUT, 'apple-touch-icon.png'), await shoot(page, logo(180, '#16182d'), 180, 180, false))
    const icons = []
    for (const size of [16, 32, 48]) icons.push({ size, png: await shoot(page, logo(size, null), size, size, true) })
    writeFileSync(join(OUT, 'favicon.ico'), icoFromPngs(icons))
    process.stderr.write(`images written to ${OUT}\n`)
  } finally {
    await browser.close()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
