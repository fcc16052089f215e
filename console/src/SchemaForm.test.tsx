import { renderToStaticMarkup } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import type { ActionSpec } from './api'
import type { Step } from './model'
import { enumOf, resolve, SchemaFields, STEP_TYPES, StepFields, stepVariant, TRIGGER_TYPES, triggerVariant, TYPE_ONLY } from './SchemaForm'

const catalog: ActionSpec[] = [
  {
    name: 'http.request',
    description: 'Send an HTTP request.',
    paramsSchema: {
      type: 'object',
      required: ['url'],
      properties: {
        method: { enum: ['GET', 'POST'], default: 'GET' },
        url: { type: 'string' },
        headers: { type: 'object' },
        timeoutMs: { type: 'integer', minimum: 1, maximum: 900000 },
        tags: { type: 'array', items: { type: 'string' } },
        json: { description: 'A JSON body.' },
        follow: { type: 'boolean' },
      },
    } as ActionSpec['paramsSchema'],
  },
]
const ctx = { suggestions: ['input.'], siblings: ['a', 'b'], fieldProblem: () => [] }
const render = (step: Step, widgets?: Parameters<typeof StepFields>[0]['widgets']) => renderToStaticMarkup(<StepFields step={step} set={() => {}} ctx={ctx} catalog={catalog} widgets={widgets} />)
/** The element with that data-testid (its opening tag). */
const tag = (html: string, testId: string) => new RegExp(`<[a-z]+[^>]*data-testid="${testId}"[^>]*>`).exec(html)?.[0] ?? ''

describe('the workflow schema', () => {
  it('has a variant for each of the six step types, and resolves refs and nullable unions', () => {
    expect(STEP_TYPES).toEqual(['start', 'action', 'llm', 'condition', 'loop', 'output'])
    expect(resolve(stepVariant('llm')!.properties!.responseFormat).enum).toEqual(['text', 'json'])
    expect(resolve(stepVariant('action')!.properties!.retry).properties).toHaveProperty('maxRetries')
    expect(enumOf('WebhookScheme')).toEqual(['standard', 'github', 'stripe', 'slack', 'none'])
  })
})

describe('generated step forms', () => {
  it('start: triggers through their widget, input schema as a JSON editor, next as an edge select', () => {
    const html = render({ id: 'start', type: 'start', triggers: [{ type: 'manual' }], inputSchema: { type: 'object' }, next: 'a' }, { triggers: () => <div data-testid="triggers-widget" /> })
    expect(html).toContain('data-testid="triggers-widget"')
    expect(tag(html, 'field-inputSchema')).toMatch(/^<textarea/)
    expect(html).toContain('JSON Schema every input must match')
    expect(tag(html, 'field-next')).toMatch(/^<select/)
    expect(html).toContain('<option value="a" selected="">a</option>')
    expect(html).not.toContain('field-position')
  })

  it('action: the action select, params from the action schema, retry group, timeout with its minimum, onError', () => {
    const html = render({ id: 'req', type: 'action', action: 'http.request', params: { url: 'https://x', method: 'POST', tags: ['a', 'b'] }, onError: 'b' })
    expect(tag(html, 'field-action')).toMatch(/^<select/)
    expect(html).toContain('Action (required)')
    expect(html).toContain('Send an HTTP request.')
    expect(tag(html, 'field-params-url')).toContain('role="combobox"') // template completion
    expect(tag(html, 'field-params-url')).toContain('value="https://x"')
    expect(html).toContain('url (required)')
    expect(tag(html, 'field-params-method')).toMatch(/^<select/)
    expect(html).toContain('<option selected="">POST</option>')
    expect(tag(html, 'field-params-timeoutMs')).toContain('min="1"')
    expect(tag(html, 'field-params-timeoutMs')).toContain('max="900000"')
    expect(tag(html, 'field-params-headers')).toMatch(/^<textarea/)
    expect(html).toContain('a\nb</textarea>') // array of strings, one per line
    expect(tag(html, 'field-params-json')).toMatch(/^<textarea/)
    expect(tag(html, 'field-params-follow')).toContain('type="checkbox"')
    expect(tag(html, 'field-retry')).toMatch(/^<details/)
    expect(tag(html, 'field-retry-maxRetries')).toContain('min="0"')
    expect(tag(html, 'field-timeoutMs')).toContain('min="1"')
    expect(tag(html, 'field-onError')).toMatch(/^<select/)
    expect(tag(html, 'field-next')).toMatch(/^<select/)
  })

  it('llm: model and prompt required, prompt with completion, response format enum, numbers', () => {
    const html = render({ id: 'ask', type: 'llm', model: 'gpt', prompt: 'Hi {{ input.name }}', temperature: 0.2 })
    expect(html).toContain('Model (required)')
    expect(html).toContain('Prompt (required)')
    expect(tag(html, 'field-prompt')).toMatch(/^<textarea[^>]*role="combobox"/)
    expect(tag(html, 'field-system')).toContain('role="combobox"')
    expect(tag(html, 'field-responseFormat')).toMatch(/^<select/)
    expect(html).toContain('(default: text)')
    expect(html).toContain('<option>json</option>')
    expect(tag(html, 'field-temperature')).toContain('step="any"')
    expect(tag(html, 'field-maxTokens')).toContain('step="1"')
    expect(tag(html, 'field-jsonSchema')).toMatch(/^<textarea/)
  })

  it('condition: a group per branch with its template and edge, else as an edge select', () => {
    const html = render({ id: 'c', type: 'condition', branches: [{ if: '{{ input.x > 1 }}', next: 'a' }], else: 'b' })
    expect(tag(html, 'field-branches')).toMatch(/^<fieldset/)
    expect(tag(html, 'field-branches-0-if')).toContain('role="combobox"')
    expect(tag(html, 'field-branches-0-if')).toContain('value="{{ input.x &gt; 1 }}"')
    expect(tag(html, 'field-branches-0-next')).toMatch(/^<select/)
    expect(html).toContain('+ Branch')
    expect(tag(html, 'field-else')).toMatch(/^<select/)
    expect(html).toContain('<option value="b" selected="">b</option>')
  })

  it('loop: items with completion, concurrency 1..100, the body left to the canvas', () => {
    const html = render({ id: 'l', type: 'loop', items: '{{ input.list }}', concurrency: 4, steps: [] })
    expect(html).toContain('Items (required)')
    expect(tag(html, 'field-items')).toContain('role="combobox"')
    expect(html).toContain('Exactly one `{{ expr }}` that yields an array.')
    expect(tag(html, 'field-concurrency')).toContain('min="1"')
    expect(tag(html, 'field-concurrency')).toContain('max="100"')
    expect(tag(html, 'field-concurrency')).toContain('value="4"')
    expect(html).not.toContain('field-steps')
  })

  it('output: the value as a JSON editor, no next', () => {
    const html = render({ id: 'o', type: 'output', output: { ok: true } })
    expect(tag(html, 'field-output')).toMatch(/^<textarea/)
    expect(html).toContain('&quot;ok&quot;: true')
    expect(html).not.toContain('field-next')
    expect(tag(html, 'field-name')).toMatch(/^<input/)
  })

  it('triggers: each trigger type generated from its variant', () => {
    expect(TRIGGER_TYPES).toEqual(['webhook', 'schedule', 'event', 'manual'])
    const trig = (t: Record<string, unknown>) => renderToStaticMarkup(<SchemaFields schema={triggerVariant(String(t.type))!} value={t} onChange={() => {}} ctx={ctx} pointer="/triggers/0" skip={TYPE_ONLY} />)
    const hook = trig({ type: 'webhook', scheme: 'none' })
    expect(tag(hook, 'field-triggers-0-scheme')).toMatch(/^<select/)
    expect(hook).toContain('<option selected="">none</option>')
    expect(tag(hook, 'field-triggers-0-secretEnv')).toMatch(/^<input/)
    const event = trig({ type: 'event', event: 'order.created', filter: '{{ event.detail.x }}' })
    expect(event).toContain('Event (required)')
    expect(tag(event, 'field-triggers-0-filter')).toContain('role="combobox"')
    expect(tag(trig({ type: 'schedule', cron: '0 9 * * *' }), 'field-triggers-0-cron')).toContain('value="0 9 * * *"')
  })
})
