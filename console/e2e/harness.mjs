// What the browser tests and the measurements share: a real `wf dev` on a free port with a temp
// database and a temp workflows folder, a mock HTTP peer, a mock OpenAI-compatible LLM, and
// Debian's Chromium driven by playwright-core.

import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

export const consoleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const repo = path.resolve(consoleDir, '..')
export const results = path.join(consoleDir, 'test-results')
fs.mkdirSync(results, { recursive: true })

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

/** The `wf` binary: $WF_BIN, else <cargo target dir>/debug/wf (scripts/console-test builds it). */
export function wfBinary() {
  if (process.env.WF_BIN) return process.env.WF_BIN
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: repo, encoding: 'utf8' }))
  const bin = path.join(meta.target_directory, 'debug', 'wf')
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run cargo build -p wf-cli first`)
  return bin
}

/** A local HTTP peer: /ok answers JSON (echoing the body), /slow answers after ?ms (default 8 s). */
export async function mockPeer() {
  const requests = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const url = new URL(req.url, 'http://x')
      requests.push({ method: req.method, path: url.pathname, body })
      const answer = () => {
        res.writeHead(200, { 'Content-Type': 'application/json' })
        res.end(JSON.stringify({ ok: true, path: url.pathname, received: body ? JSON.parse(body) : null }))
      }
      if (url.pathname === '/slow') setTimeout(answer, Number(url.searchParams.get('ms') ?? 8000))
      else answer()
    })
  })
  const port = await freePort()
  await new Promise((r) => server.listen(port, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${port}`, requests, close: () => server.close() }
}

/**
 * A mock OpenAI-compatible chat-completions endpoint for the AI features: the first answer is a
 * small workflow (generate), later answers add a `note` step to it (chat refine).
 */
export async function mockLlm() {
  let calls = 0
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      calls++
      const base = {
        id: 'x',
        name: 'Generated',
        steps: [
          { id: 'start', type: 'start', triggers: [{ type: 'manual' }], next: 'done' },
          { id: 'done', type: 'output', output: { ok: true } },
        ],
      }
      const refined = {
        ...base,
        steps: [
          { id: 'start', type: 'start', triggers: [{ type: 'manual' }], next: 'note' },
          { id: 'note', type: 'action', action: 'record.create', params: { collection: 'notes', data: { at: '{{ execution.id }}' } }, next: 'done' },
          { id: 'done', type: 'output', output: { ok: true } },
        ],
      }
      const isChat = calls > 1
      const answer = { workflow: isChat ? refined : base, explanation: isChat ? 'Added a note step that records each run.' : 'A manual workflow that answers ok.' }
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ id: 'c', object: 'chat.completion', model: 'mock', choices: [{ index: 0, message: { role: 'assistant', content: JSON.stringify(answer) }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1 } }))
    })
  })
  const port = await freePort()
  await new Promise((r) => server.listen(port, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${port}/v1`, calls: () => calls, close: () => server.close() }
}

/** `wf dev` on a free port, a temp DB and a temp workflows folder holding `files` (name -> JSON). */
export async function wfDev({ files = {}, env = {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wf-console-'))
  const wfDir = path.join(dir, 'workflows')
  fs.mkdirSync(wfDir)
  for (const [name, json] of Object.entries(files)) fs.writeFileSync(path.join(wfDir, name), JSON.stringify(json, null, 2))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const log = fs.openSync(path.join(results, 'wf-dev.log'), 'a')
  const child = spawn(wfBinary(), ['dev', '--addr', `127.0.0.1:${port}`, '--db', path.join(dir, 'dev.db'), '--workflows', wfDir], {
    env: { ...process.env, WF_LOG: 'warn', ...env },
    stdio: ['ignore', log, log],
  })
  const deadline = Date.now() + 60000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wf dev exited (${child.exitCode}); see test-results/wf-dev.log`)
    try {
      const r = await fetch(`${base}/health`)
      if (r.ok) break
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error('wf dev did not answer /health within 60 s')
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    base,
    dir,
    wfDir,
    async api(method, p, body) {
      const r = await fetch(base + p, { method, headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined })
      const text = await r.text()
      const json = text ? JSON.parse(text) : null
      if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`)
      return json
    },
    stop() {
      child.kill('SIGTERM')
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

/** Debian's Chromium with a fresh profile. */
export async function browser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wf-chromium-'))
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  })
  return {
    ctx,
    async close() {
      await ctx.close()
      fs.rmSync(profile, { recursive: true, force: true })
    },
  }
}

const axeSource = fs.readFileSync(path.join(consoleDir, 'node_modules/axe-core/axe.min.js'), 'utf8')

/** axe-core on the page: the serious or critical violations (none expected). */
export async function axe(page) {
  await page.evaluate(axeSource)
  const out = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }))
  })
  return out.filter((v) => v.impact === 'serious' || v.impact === 'critical')
}
