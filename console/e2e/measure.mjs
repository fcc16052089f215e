// The console's figures (scripts/console-measure): bundle size (gzip), first render of the
// automations list, opening an execution with 1,000+ step records, and the live-status latency
// from a step record being stored to its status showing on the canvas (SSE). Prints a table and
// a JSON line. Needs a built `wf` (cargo build -p wf-cli) and /usr/bin/chromium.

import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { browser, consoleDir, mockPeer, repo, wfDev } from './harness.mjs'

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const figures = {}

// 1. bundle
let gz = 0
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : (gz += zlib.gzipSync(fs.readFileSync(path.join(d, e.name)), { level: 9 }).length)))
walk(path.join(consoleDir, 'dist'))
figures.bundleGzipBytes = gz

const examples = Object.fromEntries(
  fs.readdirSync(path.join(repo, 'workflows')).filter((f) => f.endsWith('.json') && f !== 'schema.json').map((f) => [f, JSON.parse(fs.readFileSync(path.join(repo, 'workflows', f), 'utf8'))]),
)
const peer = await mockPeer()
const dev = await wfDev({ files: examples })
const b = await browser()
const page = await b.ctx.newPage()
try {
  // 2. first render of the automations list (navigation start -> rows with their last run)
  for (let i = 0; i < 12; i++) await dev.api('POST', '/workflows/generate', { name: `Measure ${i}` })
  const list = []
  for (let i = 0; i < 5; i++) {
    await page.goto('about:blank')
    await page.goto(`${dev.base}/#/`)
    await page.waitForFunction(() => {
      const rows = document.querySelectorAll('[data-testid="automations"] tbody tr')
      return rows.length > 0 && ![...rows].some((r) => r.textContent.includes('…'))
    })
    list.push(await page.evaluate(() => performance.now()))
  }
  figures.listFirstRenderMs = Math.round(median(list))
  figures.listWorkflows = await page.locator('[data-testid="automations"] tbody tr').count()

  // 3. an execution with 1,000 iterations (1,003 step records) opening
  await dev.api('POST', '/workflows', {
    id: 'thousand',
    name: 'Thousand',
    steps: [
      { id: 'start', type: 'start', triggers: [{ type: 'manual' }], next: 'each' },
      { id: 'each', type: 'loop', items: '{{ input.items }}', concurrency: 20, steps: [{ id: 'line', type: 'output', output: { n: '{{ index }}', v: '{{ item }}' } }], next: 'done' },
      { id: 'done', type: 'output', output: { count: '{{ steps.each.output | length }}' } },
    ],
  })
  const items = Array.from({ length: 1000 }, (_, i) => i)
  const started = await dev.api('POST', '/workflows/thousand/executions?draft=true&wait=30', { input: { items } })
  const id = started.id ?? started.executionId
  let view = await dev.api('GET', `/executions/${id}`)
  for (let i = 0; i < 120 && view.status !== 'succeeded'; i++) {
    await new Promise((r) => setTimeout(r, 500))
    view = await dev.api('GET', `/executions/${id}`)
  }
  figures.bigExecutionRecords = view.steps.length
  const open = []
  for (let i = 0; i < 3; i++) {
    await page.goto('about:blank')
    await page.goto(`${dev.base}/#/x/${id}`)
    await page.locator('[data-testid="waterfall"] .wf-row').first().waitFor({ timeout: 30000 })
    await page.locator('[data-testid="node-each/line"][data-status="succeeded"]').waitFor({ timeout: 30000 })
    open.push(await page.evaluate(() => performance.now()))
  }
  figures.bigExecutionOpenMs = Math.round(median(open))

  // 4. live status latency: step record stored (its finishedAt) -> status shown on the canvas
  const chain = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6']
  await dev.api('POST', '/workflows', {
    id: 'live',
    name: 'Live',
    steps: [
      { id: 'start', type: 'start', triggers: [{ type: 'manual' }], next: 'a1' },
      ...chain.map((s, i) => ({ id: s, type: 'action', action: 'http.request', params: { url: `${peer.url}/slow?ms=150` }, next: chain[i + 1] ?? 'done' })),
      { id: 'done', type: 'output', output: 1 },
    ],
  })
  await page.goto('about:blank')
  await page.goto(`${dev.base}/#/w/live`)
  await page.locator('[data-testid="node-a1"]').waitFor()
  await page.evaluate(() => {
    window.__seen = {}
    new MutationObserver((ms) => {
      for (const m of ms) {
        const el = m.target
        if (el.dataset?.status === 'succeeded' && !window.__seen[el.dataset.testid]) window.__seen[el.dataset.testid] = Date.now()
      }
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-status'] })
  })
  await page.getByRole('button', { name: 'Test' }).click()
  await page.getByTestId('execute').click()
  await page.locator('[data-testid="test-result"][data-status="succeeded"]').waitFor({ timeout: 30000 })
  const mode = await page.getByTestId('test-result').innerText()
  const seen = await page.evaluate(() => window.__seen)
  const eid = (await dev.api('GET', '/workflows/live/executions?limit=1')).items[0].id
  const rec = await dev.api('GET', `/executions/${eid}`)
  const lat = rec.steps.filter((s) => chain.includes(s.path)).map((s) => seen[`node-${s.path}`] - Date.parse(s.finishedAt))
  figures.liveLatencyMs = { median: median(lat), max: Math.max(...lat), samples: lat.length, transport: mode.includes('live stream') ? 'sse' : 'poll' }
} finally {
  await b.close()
  dev.stop()
  peer.close()
}

console.log(`console bundle (gzip, all files)       ${(figures.bundleGzipBytes / 1024).toFixed(1)} KB   (budget 300 KB)`)
console.log(`automations list first render          ${figures.listFirstRenderMs} ms   (${figures.listWorkflows} workflows with last runs; budget 1000 ms)`)
console.log(`execution with ${figures.bigExecutionRecords} step records opens   ${figures.bigExecutionOpenMs} ms   (budget 1000 ms)`)
console.log(`live status, step stored -> canvas     median ${figures.liveLatencyMs.median} ms, max ${figures.liveLatencyMs.max} ms over ${figures.liveLatencyMs.samples} steps via ${figures.liveLatencyMs.transport}   (budget 200 ms)`)
console.log(JSON.stringify(figures))
