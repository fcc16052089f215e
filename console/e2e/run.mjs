// Browser tests of the console against a real `wf dev` (see harness.mjs). Each test saves a
// screenshot under console/test-results/; the canvas and an execution are copied to docs/.
// Usage: node e2e/run.mjs [name-filter]. Exit 1 when a test fails.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { axe, browser, mockLlm, mockPeer, repo, results, wfDev } from './harness.mjs'

/** The start step of a workflow started by hand, going on to `next`. */
const manualStart = (next) => ({ id: 'start', type: 'start', triggers: [{ type: 'manual' }], next })
/** The last step, `done`, answering `output`. */
const doneStep = (output) => ({ id: 'done', type: 'output', output })

const filter = process.argv[2] ?? ''
const peer = await mockPeer()
const llm = await mockLlm()
const fileFlow = {
  id: 'file-flow',
  name: 'File-based flow',
  steps: [manualStart('done'), doneStep({ hello: '{{ input.name | default("world") }}' })],
}
const dev = await wfDev({ files: { 'file-flow.json': fileFlow }, env: { WF_LLM_BASE_URL: llm.url, WF_LLM_API_KEY: 'test', WF_AI_TIMEOUT_SECS: '20' } })
const b = await browser()
const page = await b.ctx.newPage()
const pageErrors = []
page.on('pageerror', (e) => pageErrors.push(e.message))
page.setDefaultTimeout(15000)

const tests = []
const test = (name, f) => tests.push({ name, f })
const shot = (name) => page.screenshot({ path: path.join(results, `${name}.png`) })
const open = async (hash) => {
  // A fresh page load each time (a hash-only change would keep the previous view's state).
  await page.goto('about:blank')
  await page.goto(`${dev.base}/${hash}`)
}
const node = (p) => page.locator(`[data-testid="node-${p}"]`)
/** Save the draft of workflow `id` through the API. */
const saveDraft = (id, name, steps) => dev.api('POST', '/workflows', { id, name, steps })
const state = {}

async function noA11yProblems(view) {
  const v = await axe(page)
  assert.deepEqual(v, [], `axe: serious/critical violations on ${view}: ${JSON.stringify(v, null, 1)}`)
}

/** Drag from a node's source handle to another node's target handle (connect on the canvas). */
async function drag(fromNode, handle, toNode) {
  const src = page.locator(`.react-flow__handle[data-nodeid="${fromNode}"][data-handleid="${handle}"]`)
  const dst = page.locator(`.react-flow__handle[data-nodeid="${toNode}"][data-handleid="in"]`)
  const a = await src.boundingBox()
  const z = await dst.boundingBox()
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2)
  await page.mouse.down()
  await page.mouse.move((a.x + z.x) / 2, (a.y + z.y) / 2 + 10, { steps: 5 })
  await page.mouse.move(z.x + z.width / 2, z.y + z.height / 2, { steps: 5 })
  await page.mouse.up()
}

async function saved() {
  await page.locator('.save.s-saved').waitFor()
}

async function addStep(type, action, selectFirst) {
  if (selectFirst) await node(selectFirst).click()
  await page.getByTestId('add-step').click()
  await page.getByTestId(`add-${type}`).click()
  if (action) await page.getByTestId(`action-${action}`).click()
}

test('automations list (axe)', async () => {
  await open('#/')
  await page.locator('[data-testid="automations"] tr[data-id="file-flow"]').waitFor()
  await noA11yProblems('automations list')
  await shot('list')
})

test('create a workflow visually, webhook trigger, publish, activate', async () => {
  await open('#/')
  await page.getByRole('button', { name: 'New automation' }).click()
  await page.getByLabel('Name').fill('E2E order')
  await page.getByRole('button', { name: 'Create empty draft' }).click()
  await page.waitForURL(/#\/w\/e2e-order/)
  await node('start').waitFor()
  // start -> condition (linked as start's next), condition -> action (drawn), action -> output
  await addStep('condition', null, 'start')
  await node('condition').waitFor()
  await addStep('action', 'http.request', 'condition')
  await node('request').waitFor()
  await page.getByRole('button', { name: 'Close' }).click()
  await drag('condition', 'b0', 'request')
  await page.locator('.react-flow__edge[data-id="condition:b0"], [data-testid="rf__edge-condition:b0"]').first().waitFor()
  await addStep('output', null, 'request')
  await node('output').waitFor()
  // configure: the condition, the HTTP call against the mock peer, the output
  await node('condition').click()
  await page.getByTestId('field-branches-0-if').fill('{{ input.amount > 100 }}')
  await node('request').click()
  await page.getByTestId('field-params-url').fill(`${peer.url}/ok`)
  await page.getByTestId('field-params-method').selectOption('POST')
  await page.getByTestId('field-params-json').fill('{"orderId": "{{ input.orderId }}", "amount": "{{ input.amount }}"}')
  await node('output').click()
  await page.getByTestId('field-output').fill('{"sent": "{{ steps.request.output.status == 200 }}"}')
  // webhook trigger on the start step (no signature, so the test can call it plainly)
  await node('start').click()
  await page.getByTestId('add-trigger').selectOption('webhook')
  await page.getByTestId('trigger-webhook').getByLabel('Scheme', { exact: true }).selectOption('none')
  await page.getByTestId('field-inputSchema').fill('{"type": "object", "required": ["orderId", "amount"], "properties": {"orderId": {"type": "string"}, "amount": {"type": "number"}}}')
  await saved()
  await page.waitForFunction(() => !document.querySelector('[data-testid="problem-count"]'))
  const draft = (await dev.api('GET', '/workflows/e2e-order')).draft
  assert.equal(draft.steps.find((s) => s.id === 'condition').branches[0].next, 'request')
  assert.equal(draft.steps.find((s) => s.id === 'request').next, 'output')
  await page.getByRole('button', { name: 'Close' }).click()
  await page.getByTestId('publish').click()
  await page.getByTestId('diff').waitFor()
  await page.getByTestId('confirm-publish').click()
  await page.getByRole('heading', { name: 'Published version 1' }).waitFor()
  await page.getByRole('button', { name: 'Close' }).click()
  await page.getByTestId('activate').click()
  await page.getByRole('button', { name: 'Deactivate' }).waitFor()
  const w = await dev.api('GET', '/workflows/e2e-order')
  assert.equal(w.workflow.active, true)
  assert.equal(w.workflow.activeVersion, 1)
  await page.getByRole('button', { name: 'Fit View' }).click()
  await noA11yProblems('canvas editor')
  await shot('canvas')
  fs.copyFileSync(path.join(results, 'canvas.png'), path.join(repo, 'docs', 'console-canvas.png'))
})

test('generated step forms: editing a field changes the saved draft (axe)', async () => {
  await open('#/w/e2e-order')
  await node('request').click()
  // fields generated from the workflow schema (step variant) and the action's params schema
  await page.getByTestId('field-timeoutMs').fill('5000')
  await page.getByTestId('field-retry').locator('summary').click()
  await page.getByTestId('field-retry-maxRetries').fill('1')
  await page.getByTestId('field-params-timeoutMs').fill('4000')
  await saved()
  await page.waitForFunction(() => !document.querySelector('[data-testid="problem-count"]'))
  let step = (await dev.api('GET', '/workflows/e2e-order')).draft.steps.find((s) => s.id === 'request')
  assert.equal(step.timeoutMs, 5000)
  assert.deepEqual(step.retry, { maxRetries: 1 })
  assert.equal(step.params.timeoutMs, 4000)
  assert.equal(step.params.url, `${peer.url}/ok`)
  await noA11yProblems('generated action form')
  await shot('step-form-action')
  await node('condition').click()
  await page.getByTestId('field-name').fill('Big order?')
  await saved()
  step = (await dev.api('GET', '/workflows/e2e-order')).draft.steps.find((s) => s.id === 'condition')
  assert.equal(step.name, 'Big order?')
  assert.equal(step.branches[0].if, '{{ input.amount > 100 }}')
  await noA11yProblems('generated condition form')
  await node('start').click()
  await page.getByTestId('field-inputSchema').waitFor()
  await noA11yProblems('generated start form')
  await shot('step-form')
})

test('a webhook request runs it; the execution view matches the API record', async () => {
  const w = await dev.api('GET', '/workflows/e2e-order')
  const r = await fetch(`${w.workflow.webhookUrl}?wait=10`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ orderId: 'A-1', amount: 150 }) })
  assert.equal(r.status, 200)
  const record = await r.json()
  assert.equal(record.status, 'succeeded')
  assert.ok(peer.requests.some((q) => q.path === '/ok' && q.body.includes('A-1')), 'the mock peer got the call')
  state.execution = record.id
  await open(`#/x/${record.id}`)
  await page.locator('[data-testid="execution"][data-status="succeeded"]').waitFor()
  for (const s of record.steps) await page.locator(`[data-testid="node-${s.path}"][data-status="${s.status}"]`).waitFor()
  // node colours follow the status
  const ring = await node('request').evaluate((el) => getComputedStyle(el).boxShadow)
  assert.match(ring, /rgb\(34, 197, 94\)/)
  await page.locator('.wf-row[data-path="request"]').click()
  const rec = page.getByTestId('record')
  await rec.waitFor()
  const shown = await rec.locator('details.json').nth(1).locator('pre').innerText()
  const api = record.steps.find((s) => s.path === 'request')
  assert.deepEqual(JSON.parse(shown), api.output)
  const input = await rec.locator('details.json').nth(0).locator('pre').innerText()
  assert.deepEqual(JSON.parse(input), api.input)
  await noA11yProblems('execution view')
  await shot('execution')
  fs.copyFileSync(path.join(results, 'execution.png'), path.join(repo, 'docs', 'console-execution.png'))
})

test('rerun from a step', async () => {
  await open(`#/x/${state.execution}`)
  await page.getByTestId('rerun').click()
  await page.getByLabel('From step (top level)').selectOption('request')
  await page.getByLabel('Input (JSON)').fill('{"orderId": "A-2", "amount": 500}')
  await page.getByTestId('rerun-confirm').click()
  await page.waitForURL((u) => u.hash.startsWith('#/x/') && !u.hash.includes(state.execution))
  await page.locator('[data-testid="execution"][data-status="succeeded"]').waitFor()
  const id = decodeURIComponent(new URL(page.url()).hash.slice(4))
  const x = await dev.api('GET', `/executions/${id}`)
  assert.equal(x.rerunOf, state.execution)
  assert.equal(x.trigger.fromStep, 'request')
  await shot('rerun')
})

test('the test panel runs the draft and the canvas shows the statuses', async () => {
  await open('#/w/e2e-order')
  await node('start').waitFor()
  await page.getByRole('button', { name: 'Test' }).click()
  const input = JSON.parse(await page.getByLabel('Input (JSON)').inputValue())
  assert.deepEqual(Object.keys(input).sort(), ['amount', 'orderId'])
  await page.getByLabel('Input (JSON)').fill('{"orderId": "T-1", "amount": 101}')
  await page.getByTestId('execute').click()
  await page.locator('[data-testid="test-result"][data-status="succeeded"]').waitFor()
  for (const p of ['start', 'condition', 'request', 'output']) await page.locator(`[data-testid="node-${p}"][data-status="succeeded"]`).waitFor()
  assert.match(await page.getByTestId('test-result').innerText(), /live stream/, 'statuses came over SSE')
  await shot('test-panel')
})

test('an invalid edit shows the problem on the right node and blocks publishing', async () => {
  await open('#/w/e2e-order')
  await node('request').click()
  await page.getByTestId('raw-json-tab').click()
  const raw = JSON.parse(await page.getByTestId('raw-json').inputValue())
  raw.next = 'nowhere'
  await page.getByTestId('raw-json').fill(JSON.stringify(raw, null, 2))
  await page.getByTestId('raw-json-apply').click()
  await saved()
  await page.locator('[data-testid="node-request"].has-problem').waitFor()
  assert.equal(await node('condition').evaluate((el) => el.dataset.problems), '0')
  assert.ok(await page.getByTestId('publish').isDisabled())
  assert.match(await page.getByTestId('publish-reason').innerText(), /problem/)
  await page.getByTestId('step-problems').waitFor()
  assert.match(await page.getByTestId('step-problems').innerText(), /nowhere/)
  await shot('invalid-edit')
  await page.getByRole('button', { name: 'Undo' }).click()
  await saved()
  await page.waitForFunction(() => !document.querySelector('.has-problem'))
})

test('a schedule from plain English shows the next runs', async () => {
  await open('#/w/e2e-order')
  await node('start').click()
  await page.getByTestId('add-trigger').selectOption('schedule')
  await page.getByLabel('In plain English').fill('every weekday at 9am')
  await page.getByTestId('cron-convert').click()
  await page.locator('[data-testid="cron-answer"]').filter({ hasText: '0 9 * * 1-5' }).waitFor()
  assert.equal(await page.locator('.next-runs li').count(), 5)
  assert.equal(await page.locator('#cron-field').inputValue(), '0 9 * * 1-5')
  assert.match(await page.getByTestId('cron-answer').innerText(), /cron\(0 9 \? \* MON-FRI \*\)/)
  await saved()
  await shot('schedule')
})

test('cancel a running execution', async () => {
  await saveDraft('slow-flow', 'Slow', [
    manualStart('wait'),
    { id: 'wait', type: 'action', action: 'http.request', params: { url: `${peer.url}/slow?ms=20000` }, next: 'done' },
    doneStep(1),
  ])
  const { executionId } = await dev.api('POST', '/workflows/slow-flow/executions?draft=true', { input: {} })
  await open(`#/x/${executionId}`)
  await page.locator('[data-testid="node-wait"][data-status="running"]').waitFor()
  await page.getByTestId('cancel').click()
  await page.locator('[data-testid="execution"][data-status="cancelled"]').waitFor()
  assert.equal((await dev.api('GET', `/executions/${executionId}`)).status, 'cancelled')
  await shot('cancel')
})

test('events that started nothing are listed with why (axe)', async () => {
  await saveDraft('typed-events', 'Typed events', [
    {
      id: 'start',
      type: 'start',
      triggers: [{ type: 'event', event: 'order.created' }],
      inputSchema: { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } },
      next: 'done',
    },
    doneStep('{{ input.amount }}'),
  ])
  await dev.api('POST', '/workflows/typed-events/publish')
  await dev.api('POST', '/workflows/typed-events/activate', {})
  await dev.api('POST', '/events', { type: 'order.created', id: 'evt-bad', detail: { amount: 'lots' } })
  await open('#/w/typed-events/executions')
  const table = page.getByTestId('rejected-events')
  // The bus routes in the background: reload until the rejection is listed.
  for (let i = 0; i < 50 && !(await table.getByText('evt-bad').count()); i++) {
    await page.waitForTimeout(100)
    await open('#/w/typed-events/executions')
  }
  await table.getByText('evt-bad').waitFor()
  await table.getByText('input', { exact: true }).waitFor()
  assert.match(await table.locator('td.message').first().innerText(), /amount/)
  await noA11yProblems('rejected events')
  await shot('rejected-events')
})

test('an execution with more step records than one answer shows them all (pages)', async () => {
  await saveDraft('many-steps', 'Many steps', [
    manualStart('each'),
    { id: 'each', type: 'loop', items: '{{ range(300) | list }}', concurrency: 20, steps: [{ id: 'line', type: 'output', output: '{{ item }}' }], next: 'done' },
    doneStep(1),
  ])
  const v = await dev.api('POST', '/workflows/many-steps/executions?draft=true&wait=30', { input: {} })
  assert.equal(v.steps.length, 200, 'the answer carries the first page')
  assert.ok(v.stepsCursor, 'and a cursor to the rest')
  await open(`#/x/${v.id}`)
  await page.getByText('Timeline (303 records, in start order)').waitFor()
})

test('a file-based workflow is read-only', async () => {
  await open('#/w/file-flow')
  await page.getByTestId('file-banner').filter({ hasText: 'file-flow.json' }).waitFor()
  assert.equal(await page.getByTestId('add-step').count(), 0)
  assert.ok(await page.getByTestId('publish').isDisabled())
  await node('done').click()
  assert.ok(await page.locator('fieldset.form input').first().isDisabled())
  await noA11yProblems('read-only workflow')
  await shot('file-read-only')
})

test('configuration, versions and executions tabs (axe)', async () => {
  await open('#/w/e2e-order/config')
  await page.getByTestId('config').waitFor()
  assert.equal(await page.getByLabel('Execution timeout (ms)').getAttribute('placeholder'), 'default 300000')
  await page.getByLabel('Variables (a JSON object, visible as vars)').fill('[1, 2]')
  await page.getByText('Must be a JSON object').waitFor()
  await noA11yProblems('configuration')
  await shot('config')
  await open('#/w/e2e-order/versions')
  await page.getByTestId('versions').waitFor()
  await noA11yProblems('versions')
  await open('#/w/e2e-order/executions')
  await page.getByTestId('executions').waitFor()
  await page.getByLabel('Trigger', { exact: true }).selectOption('rerun')
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="executions"] tbody tr').length === 1)
  await noA11yProblems('executions list')
  await shot('executions')
  const never = await dev.api('POST', '/workflows/generate', { name: 'Never published' })
  await open(`#/w/${never.id}/config`)
  assert.ok(await page.getByLabel('Active').isDisabled())
  await page.getByText('Publish it first').waitFor()
})

test('AI generate, then a chat refine shows the diff on the canvas; accept', async () => {
  await open('#/')
  await page.getByRole('button', { name: 'New automation' }).click()
  await page.getByLabel('Name').fill('AI flow')
  await page.getByLabel('Description (optional)').fill('Answer ok when started by hand')
  await page.getByRole('button', { name: 'Generate draft' }).click()
  await page.waitForURL(/#\/w\/ai-flow/)
  await node('done').waitFor()
  await page.getByLabel('Ask for a change').fill('Record a note on every run')
  await page.getByRole('button', { name: 'Send' }).click()
  await page.getByTestId('chat-diff').waitFor()
  await page.locator('[data-testid="node-note"][data-mark="added"]').waitFor()
  await page.locator('[data-testid="node-start"][data-mark="changed"]').waitFor()
  await noA11yProblems('AI chat')
  await shot('ai-chat')
  await page.getByTestId('chat-accept').click()
  await page.locator('[data-testid="node-note"][data-mark=""]').waitFor()
  const d = (await dev.api('GET', '/workflows/ai-flow')).draft
  assert.ok(d.steps.some((s) => s.id === 'note'))
  assert.equal((await dev.api('GET', '/workflows/ai-flow')).workflow.latestVersion, 0, 'nothing published')
})

let failed = 0
let passed = 0
for (const t of tests) {
  if (filter && !t.name.includes(filter)) continue
  const t0 = Date.now()
  try {
    await t.f()
    passed++
    console.log(`ok   ${t.name} (${Date.now() - t0} ms)`)
  } catch (e) {
    failed++
    console.log(`FAIL ${t.name}\n     ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n     ')}`)
    await shot(`FAILED-${t.name.replace(/\W+/g, '-')}`).catch(() => {})
  }
}
if (pageErrors.length) {
  failed++
  console.log(`FAIL page errors:\n     ${pageErrors.join('\n     ')}`)
}
await b.close()
dev.stop()
peer.close()
llm.close()
// The plain closing line CI reads: how many ran and how many failed.
console.log(`browser: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
