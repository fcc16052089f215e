// The side panel of a step: a form per type (common fields, action params from the action's
// params schema, triggers on the start step), template completion, and a raw JSON tab that
// edits the step exactly as it is saved.

import { useEffect, useId, useMemo, useRef, useState } from 'react'
import { actions, api, type ActionSpec, type CronAnswer, type Summary } from './api'
import {
  COLORS,
  findStep,
  pointerToNode,
  renameStep,
  scopeOf,
  scopeSteps,
  templateSuggestions,
  TYPE_LABEL,
  updateStep,
  type Problem,
  type Step,
  type Workflow,
} from './model'
import { Busy, ErrorBox, JsonField, useAction } from './ui'

interface Props {
  wf: Workflow
  path: string
  readOnly: boolean
  problems: Problem[]
  summary: Summary
  setSummary: (s: Summary) => void
  onChange: (wf: Workflow, newPath?: string) => void
  onClose: () => void
}

export function StepPanel({ wf, path, readOnly, problems, summary, setSummary, onChange, onClose }: Props) {
  const step = findStep(wf, path)!
  const [tab, setTab] = useState<'form' | 'json'>('form')
  const set = (patch: Partial<Step>) =>
    onChange(
      updateStep(wf, path, (s) => {
        const out: Step = { ...s, ...patch }
        for (const [k, v] of Object.entries(patch)) if (v === undefined || v === '') delete out[k]
        return out
      }),
    )
  const suggestions = useMemo(() => templateSuggestions(wf, path), [wf, path])
  const siblings = (scopeSteps(wf, scopeOf(path)) ?? []).map((s) => s?.id).filter((x) => x && x !== step.id) as string[]
  const fieldProblem = (field: string) => problems.filter((p) => pointerToNode(wf, p.pointer).field.startsWith(field))
  const ctx: FormCtx = { wf, step, set, readOnly, suggestions, siblings, fieldProblem }
  return (
    <aside className="panel" aria-label={`Step ${step.id}`} data-testid="step-panel">
      <div className="panel-head">
        <h2>
          <span className="swatch" style={{ background: COLORS[step.type] }} aria-hidden="true" /> {TYPE_LABEL[step.type] ?? step.type}: {step.id}
        </h2>
        <button className="link" onClick={onClose}>
          Close
        </button>
      </div>
      {problems.length > 0 && (
        <ul className="problems" data-testid="step-problems">
          {problems.map((p, i) => (
            <li key={i}>
              <code>{pointerToNode(wf, p.pointer).field || '/'}</code> {p.message}
              {p.hint && <div className="hint">{p.hint}</div>}
            </li>
          ))}
        </ul>
      )}
      <div className="subtabs" role="tablist">
        <button role="tab" aria-selected={tab === 'form'} onClick={() => setTab('form')}>
          Form
        </button>
        <button role="tab" aria-selected={tab === 'json'} onClick={() => setTab('json')} data-testid="raw-json-tab">
          Raw JSON
        </button>
      </div>
      {tab === 'json' ? (
        <RawJson step={step} readOnly={readOnly} onApply={(s) => onChange(updateStep(wf, path, () => s), s.id !== step.id ? (scopeOf(path) ? `${scopeOf(path)}/${s.id}` : s.id) : undefined)} />
      ) : (
        <fieldset disabled={readOnly} className="form">
          <IdField
            id={step.id}
            onRename={(id) => {
              const np = scopeOf(path) ? `${scopeOf(path)}/${id}` : id
              onChange(renameStep(wf, path, id), np)
            }}
          />
          <Text label="Name" value={step.name as string} onChange={(v) => set({ name: v })} />
          {step.type === 'start' && <StartForm ctx={ctx} summary={summary} setSummary={setSummary} />}
          {step.type === 'action' && <ActionForm ctx={ctx} />}
          {step.type === 'llm' && <LlmForm ctx={ctx} />}
          {step.type === 'condition' && <ConditionForm ctx={ctx} />}
          {step.type === 'loop' && (
            <>
              <TemplateInput label="Items (one {{ expr }} that yields an array)" value={step.items as string} onChange={(v) => set({ items: v })} ctx={ctx} field="/items" />
              <Num label="Concurrency (1–100)" value={step.concurrency as number} onChange={(v) => set({ concurrency: v })} placeholder="default 1" />
              <p className="muted small">The body is drawn inside the loop: select the loop and use Add step to add to it. Inside, use item and index.</p>
            </>
          )}
          {step.type === 'output' && <JsonField label="Output (any JSON; strings may be templates)" value={step.output} onChange={(v) => set({ output: v })} rows={8} />}
          {step.type !== 'condition' && step.type !== 'output' && <EdgeSelect label="Next" value={step.next} options={siblings} onChange={(v) => set({ next: v })} />}
          {(step.type === 'action' || step.type === 'llm' || step.type === 'loop') && (
            <EdgeSelect label="On error (after retries)" value={step.onError} options={siblings} onChange={(v) => set({ onError: v })} />
          )}
          {(step.type === 'action' || step.type === 'llm') && <RetryFields ctx={ctx} />}
        </fieldset>
      )}
    </aside>
  )
}

interface FormCtx {
  wf: Workflow
  step: Step
  set: (p: Partial<Step>) => void
  readOnly: boolean
  suggestions: string[]
  siblings: string[]
  fieldProblem: (field: string) => Problem[]
}

function IdField({ id, onRename }: { id: string; onRename: (id: string) => void }) {
  const [v, setV] = useState(id)
  const ok = /^[A-Za-z_][A-Za-z0-9_]*$/.test(v)
  return (
    <div className="field">
      <label htmlFor="step-id">Id</label>
      <input id="step-id" value={v} onChange={(e) => setV(e.target.value)} onBlur={() => ok && v !== id && onRename(v)} aria-invalid={!ok} />
      {!ok && <div className="field-error">Letters, digits and _; not starting with a digit.</div>}
    </div>
  )
}

function Text({ label, value, onChange, placeholder, id }: { label: string; value: string | undefined; onChange: (v: string) => void; placeholder?: string; id?: string }) {
  const auto = useId()
  return (
    <div className="field">
      <label htmlFor={id ?? auto}>{label}</label>
      <input id={id ?? auto} value={value ?? ''} onChange={(e) => onChange(e.target.value)} placeholder={placeholder} />
    </div>
  )
}

function Num({ label, value, onChange, placeholder }: { label: string; value: number | undefined; onChange: (v: number | undefined) => void; placeholder?: string }) {
  const id = useId()
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} type="number" value={value ?? ''} placeholder={placeholder} onChange={(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))} />
    </div>
  )
}

function EdgeSelect({ label, value, options, onChange }: { label: string; value: string | null | undefined; options: string[]; onChange: (v: string | undefined) => void }) {
  const id = useId()
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value ?? ''} onChange={(e) => onChange(e.target.value || undefined)}>
        <option value="">— none (the path ends) —</option>
        {value && !options.includes(value) && <option value={value}>{value} (missing)</option>}
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </div>
  )
}

/** A text field with completion after `{{ `: input., vars., steps.<id>.output, item, index, secrets. */
export function TemplateInput({ label, value, onChange, ctx, field, multiline, testId }: { label: string; value: string | undefined; onChange: (v: string) => void; ctx: FormCtx; field?: string; multiline?: boolean; testId?: string }) {
  const id = useId()
  const ref = useRef<HTMLInputElement & HTMLTextAreaElement>(null)
  const [open, setOpen] = useState<{ prefix: string; at: number } | null>(null)
  const [active, setActive] = useState(0)
  const problems = field ? ctx.fieldProblem(field) : []
  const matches = open ? ctx.suggestions.filter((s) => s.startsWith(open.prefix) && s !== open.prefix).slice(0, 8) : []
  const check = (text: string, caret: number) => {
    const before = text.slice(0, caret)
    const m = /\{\{\s*([A-Za-z_][\w.]*|)$/.exec(before)
    if (m) {
      setOpen({ prefix: m[1], at: caret - m[1].length })
      setActive(0)
    } else setOpen(null)
  }
  const pick = (s: string) => {
    const text = value ?? ''
    const caret = ref.current?.selectionStart ?? text.length
    const at = open?.at ?? caret
    const after = text.slice(caret)
    const close = /^\s*\}\}/.test(after) || s.endsWith('.') ? '' : ' }}'
    const next = text.slice(0, at) + s + close + after
    onChange(next)
    setOpen(s.endsWith('.') ? { prefix: s, at } : null)
    requestAnimationFrame(() => {
      const pos = at + s.length + close.length
      ref.current?.setSelectionRange(pos, pos)
      ref.current?.focus()
    })
  }
  const common = {
    id,
    ref,
    value: value ?? '',
    'aria-invalid': problems.length > 0,
    'aria-autocomplete': 'list' as const,
    'aria-expanded': matches.length > 0,
    'aria-controls': `${id}-list`,
    role: 'combobox',
    'data-testid': testId,
    onChange: (e: { target: { value: string; selectionStart: number | null } }) => {
      onChange(e.target.value)
      check(e.target.value, e.target.selectionStart ?? e.target.value.length)
    },
    onKeyDown: (e: React.KeyboardEvent) => {
      if (!matches.length) return
      if (e.key === 'ArrowDown') (e.preventDefault(), setActive((active + 1) % matches.length))
      else if (e.key === 'ArrowUp') (e.preventDefault(), setActive((active - 1 + matches.length) % matches.length))
      else if (e.key === 'Enter' || e.key === 'Tab') (e.preventDefault(), pick(matches[active]))
      else if (e.key === 'Escape') setOpen(null)
    },
    onBlur: () => setTimeout(() => setOpen(null), 150),
    spellCheck: false,
  }
  return (
    <div className="field template">
      <label htmlFor={id}>{label}</label>
      {multiline ? <textarea rows={4} {...common} /> : <input {...common} />}
      {matches.length > 0 && (
        <ul className="completion" id={`${id}-list`} role="listbox">
          {matches.map((m, i) => (
            <li key={m} role="option" aria-selected={i === active} onMouseDown={(e) => (e.preventDefault(), pick(m))}>
              {m}
            </li>
          ))}
        </ul>
      )}
      {problems.map((p, i) => (
        <div key={i} className="field-error">
          {p.message} {p.hint && <span className="hint">— {p.hint}</span>}
        </div>
      ))}
    </div>
  )
}

function RetryFields({ ctx }: { ctx: FormCtx }) {
  const retry = (ctx.step.retry ?? {}) as Record<string, number | undefined>
  const setRetry = (k: string, v: number | undefined) => {
    const next = { ...retry, [k]: v }
    for (const key of Object.keys(next)) if (next[key] === undefined) delete next[key]
    ctx.set({ retry: Object.keys(next).length ? next : undefined })
  }
  return (
    <details className="sub">
      <summary>Retries and timeout</summary>
      <Num label="Max retries (overrides config)" value={retry.maxRetries} onChange={(v) => setRetry('maxRetries', v)} placeholder="config (default 3)" />
      <Num label="Backoff (ms)" value={retry.backoffMs} onChange={(v) => setRetry('backoffMs', v)} placeholder="config (default 1000)" />
      <Num label="Backoff multiplier" value={retry.backoffMultiplier} onChange={(v) => setRetry('backoffMultiplier', v)} />
      <Num label="Max backoff (ms)" value={retry.maxBackoffMs} onChange={(v) => setRetry('maxBackoffMs', v)} />
      <Num label="Timeout of one attempt (ms)" value={ctx.step.timeoutMs as number} onChange={(v) => ctx.set({ timeoutMs: v })} />
    </details>
  )
}

function ActionForm({ ctx }: { ctx: FormCtx }) {
  const [catalog, setCatalog] = useState<ActionSpec[] | null>(null)
  const [error, setError] = useState<unknown>(null)
  useEffect(() => {
    actions().then(setCatalog, setError)
  }, [])
  const step = ctx.step
  const spec = catalog?.find((a) => a.name === step.action)
  const params = (step.params && typeof step.params === 'object' ? step.params : {}) as Record<string, unknown>
  const setParam = (k: string, v: unknown) => {
    const next = { ...params, [k]: v }
    if (v === undefined || v === '') delete next[k]
    ctx.set({ params: next })
  }
  const id = useId()
  return (
    <>
      <div className="field">
        <label htmlFor={id}>Action</label>
        <select id={id} value={String(step.action ?? '')} onChange={(e) => ctx.set({ action: e.target.value })}>
          {!spec && <option value={String(step.action ?? '')}>{String(step.action ?? '—')}</option>}
          {catalog?.map((a) => (
            <option key={a.name} value={a.name}>
              {a.name}
            </option>
          ))}
        </select>
        {spec && <div className="muted small">{spec.description}</div>}
      </div>
      <ErrorBox error={error} />
      {spec &&
        Object.entries(spec.paramsSchema.properties ?? {}).map(([k, p]) => {
          const required = spec.paramsSchema.required?.includes(k)
          const label = `${k}${required ? ' (required)' : ''}`
          const types = Array.isArray(p.type) ? p.type : p.type ? [p.type] : []
          if (p.enum)
            return (
              <EnumField key={k} label={label} value={params[k] as string} options={p.enum} onChange={(v) => setParam(k, v)} />
            )
          if (types.includes('string') || (types.length === 0 && typeof params[k] === 'string' && !p.description?.includes('JSON')))
            return <TemplateInput key={k} label={label} value={params[k] as string} onChange={(v) => setParam(k, v)} ctx={ctx} field={`/params/${k}`} testId={`param-${k}`} />
          if (types.includes('integer') || types.includes('number'))
            return <Num key={k} label={label} value={params[k] as number} onChange={(v) => setParam(k, v)} />
          return <JsonField key={k} label={`${label} (JSON)`} value={params[k]} onChange={(v) => setParam(k, v)} rows={3} />
        })}
      {!spec && catalog && <JsonField label="Params (JSON)" value={step.params} onChange={(v) => ctx.set({ params: v })} objectOnly />}
    </>
  )
}

function EnumField({ label, value, options, onChange }: { label: string; value: string | undefined; options: string[]; onChange: (v: string | undefined) => void }) {
  const id = useId()
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value ?? ''} onChange={(e) => onChange(e.target.value || undefined)}>
        <option value="">(default)</option>
        {options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    </div>
  )
}

function LlmForm({ ctx }: { ctx: FormCtx }) {
  const s = ctx.step
  return (
    <>
      <Text label="Model" value={s.model as string} onChange={(v) => ctx.set({ model: v })} />
      <TemplateInput label="System" value={s.system as string} onChange={(v) => ctx.set({ system: v })} ctx={ctx} field="/system" multiline />
      <TemplateInput label="Prompt" value={s.prompt as string} onChange={(v) => ctx.set({ prompt: v })} ctx={ctx} field="/prompt" multiline />
      <Num label="Temperature" value={s.temperature as number} onChange={(v) => ctx.set({ temperature: v })} />
      <Num label="Max tokens" value={s.maxTokens as number} onChange={(v) => ctx.set({ maxTokens: v })} />
      <EnumField label="Response format" value={s.responseFormat as string} options={['text', 'json']} onChange={(v) => ctx.set({ responseFormat: v })} />
      {s.responseFormat === 'json' && <JsonField label="JSON Schema of the answer" value={s.jsonSchema} onChange={(v) => ctx.set({ jsonSchema: v })} objectOnly />}
    </>
  )
}

function ConditionForm({ ctx }: { ctx: FormCtx }) {
  const branches = Array.isArray(ctx.step.branches) ? ctx.step.branches : []
  const setBranch = (i: number, patch: Record<string, unknown>) => {
    const next = branches.map((b, j) => {
      if (j !== i) return b
      const out = { ...b, ...patch }
      for (const [k, v] of Object.entries(out)) if (v === undefined || v === '') delete out[k]
      return out
    })
    ctx.set({ branches: next })
  }
  return (
    <>
      {branches.map((b, i) => (
        <div className="branch" key={i}>
          <TemplateInput label={`Branch ${i + 1}: if (a boolean {{ expr }})`} value={b.if} onChange={(v) => setBranch(i, { if: v })} ctx={ctx} field={`/branches/${i}/if`} testId={`branch-if-${i}`} />
          <EdgeSelect label={`Branch ${i + 1}: then`} value={b.next} options={ctx.siblings} onChange={(v) => setBranch(i, { next: v })} />
          <button type="button" className="link" onClick={() => ctx.set({ branches: branches.filter((_, j) => j !== i) })}>
            Remove branch {i + 1}
          </button>
        </div>
      ))}
      <button type="button" onClick={() => ctx.set({ branches: [...branches, { if: '{{ true }}' }] })}>
        + Branch
      </button>
      <EdgeSelect label="Else" value={ctx.step.else} options={ctx.siblings} onChange={(v) => ctx.set({ else: v })} />
    </>
  )
}

function RawJson({ step, readOnly, onApply }: { step: Step; readOnly: boolean; onApply: (s: Step) => void }) {
  const [text, setText] = useState(() => JSON.stringify(step, null, 2))
  const [err, setErr] = useState('')
  useEffect(() => setText(JSON.stringify(step, null, 2)), [step])
  const apply = () => {
    try {
      const v = JSON.parse(text)
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('a step is a JSON object')
      if (typeof v.id !== 'string') throw new Error('a step needs an "id"')
      setErr('')
      onApply(v)
    } catch (e) {
      setErr((e as Error).message)
    }
  }
  return (
    <div className="field">
      <label htmlFor="raw-json">The step as it is saved</label>
      <textarea id="raw-json" className="code" rows={18} value={text} onChange={(e) => setText(e.target.value)} readOnly={readOnly} spellCheck={false} data-testid="raw-json" />
      {err && <div className="field-error" role="alert">{err}</div>}
      {!readOnly && (
        <button onClick={apply} data-testid="raw-json-apply">
          Apply JSON
        </button>
      )}
    </div>
  )
}

// ---- Start step: triggers and input schema

const PRESETS: [string, string][] = [
  ['every 5 minutes', '*/5 * * * *'],
  ['hourly', '0 * * * *'],
  ['daily at 09:00 UTC', '0 9 * * *'],
  ['weekly (Monday 09:00 UTC)', '0 9 * * 1'],
  ['monthly (1st, 09:00 UTC)', '0 9 1 * *'],
]

function StartForm({ ctx, summary, setSummary }: { ctx: FormCtx; summary: Summary; setSummary: (s: Summary) => void }) {
  const triggers = (Array.isArray(ctx.step.triggers) ? ctx.step.triggers : []) as Record<string, unknown>[]
  const setTriggers = (t: Record<string, unknown>[]) => ctx.set({ triggers: t })
  const setT = (i: number, patch: Record<string, unknown>) =>
    setTriggers(
      triggers.map((t, j) => {
        if (j !== i) return t
        const out = { ...t, ...patch }
        for (const [k, v] of Object.entries(out)) if (v === undefined || v === '') delete out[k]
        return out
      }),
    )
  const addId = useId()
  return (
    <>
      <h3>Triggers</h3>
      {triggers.map((t, i) => (
        <div className="trigger-box" key={i} data-testid={`trigger-${t.type}`}>
          <div className="row">
            <strong>{String(t.type)}</strong>
            <button type="button" className="link" onClick={() => setTriggers(triggers.filter((_, j) => j !== i))}>
              Remove
            </button>
          </div>
          {t.type === 'schedule' && <ScheduleTrigger cron={t.cron as string} onCron={(c) => setT(i, { cron: c })} />}
          {t.type === 'event' && (
            <>
              <Text label="Event type" value={t.event as string} onChange={(v) => setT(i, { event: v })} placeholder="order.created" />
              <TemplateInput label="Filter (a boolean {{ expr }} over event)" value={t.filter as string} onChange={(v) => setT(i, { filter: v })} ctx={{ ...ctx, suggestions: ['event.detail.', 'event.type', 'event.id', 'vars.'] }} field={`/triggers/${i}/filter`} />
            </>
          )}
          {t.type === 'webhook' && <WebhookTrigger t={t} onChange={(p) => setT(i, p)} summary={summary} setSummary={setSummary} readOnly={ctx.readOnly} />}
          {t.type === 'manual' && <p className="muted small">Started from this console, the API or `wf run`.</p>}
        </div>
      ))}
      <div className="field">
        <label htmlFor={addId}>Add a trigger</label>
        <select
          id={addId}
          value=""
          onChange={(e) => {
            const type = e.target.value
            if (!type) return
            const t: Record<string, unknown> = { type }
            if (type === 'schedule') t.cron = '0 9 * * *'
            if (type === 'event') t.event = 'order.created'
            if (type === 'webhook') t.scheme = 'standard'
            setTriggers([...triggers, t])
          }}
          data-testid="add-trigger"
        >
          <option value="">Choose…</option>
          <option value="webhook">webhook</option>
          <option value="schedule">schedule</option>
          <option value="event">event</option>
          <option value="manual">manual</option>
        </select>
      </div>
      <JsonField label="Input schema (JSON Schema for every trigger's input)" value={ctx.step.inputSchema} objectOnly onChange={(v) => ctx.set({ inputSchema: v })} rows={8} id="input-schema" />
    </>
  )
}

function ScheduleTrigger({ cron, onCron }: { cron: string | undefined; onCron: (c: string) => void }) {
  const [english, setEnglish] = useState('')
  const [answer, setAnswer] = useState<CronAnswer | null>(null)
  const { busy, error, run } = useAction()
  const presetId = useId()
  const resolve = async (expression: string, ai = false) => {
    const out = await run('Reading the schedule…', () => api<CronAnswer>('POST', '/cron', { expression, ai }))
    if (out) setAnswer(out)
    return out
  }
  useEffect(() => {
    if (cron) void resolve(cron)
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [cron])
  return (
    <div className="schedule">
      <div className="field">
        <label htmlFor={presetId}>Preset</label>
        <select id={presetId} value={PRESETS.find((p) => p[1] === cron)?.[1] ?? ''} onChange={(e) => e.target.value && onCron(e.target.value)}>
          <option value="">custom</option>
          {PRESETS.map(([l, c]) => (
            <option key={c} value={c}>
              {l}
            </option>
          ))}
        </select>
      </div>
      <Text label="Cron (5 fields, UTC)" value={cron} onChange={onCron} id="cron-field" />
      <div className="field">
        <label htmlFor="cron-english">In plain English</label>
        <div className="row">
          <input id="cron-english" value={english} onChange={(e) => setEnglish(e.target.value)} placeholder="every weekday at 9am" />
          <button
            type="button"
            onClick={async () => {
              const out = await resolve(english)
              if (out) onCron(out.cron)
            }}
            disabled={!english.trim() || !!busy}
            data-testid="cron-convert"
          >
            Convert
          </button>
          <button
            type="button"
            onClick={async () => {
              const out = await resolve(english, true)
              if (out) onCron(out.cron)
            }}
            disabled={!english.trim() || !!busy}
            title="Ask the configured AI model when the parser cannot read it"
          >
            Ask AI
          </button>
        </div>
      </div>
      {busy && <Busy label={busy} />}
      <ErrorBox error={error} />
      {answer && (
        <div className="cron-answer" data-testid="cron-answer">
          <div>
            cron <code>{answer.cron}</code> · EventBridge <code>{answer.eventbridge}</code> {answer.source === 'ai' && <span className="badge none">from AI: check the runs</span>}
          </div>
          <div className="muted small">Next runs (UTC):</div>
          <ol className="next-runs">
            {answer.next.map((n) => (
              <li key={n}>{n}</li>
            ))}
          </ol>
        </div>
      )}
    </div>
  )
}

function WebhookTrigger({ t, onChange, summary, setSummary, readOnly }: { t: Record<string, unknown>; onChange: (p: Record<string, unknown>) => void; summary: Summary; setSummary: (s: Summary) => void; readOnly: boolean }) {
  const [secret, setSecret] = useState('')
  const [copied, setCopied] = useState(false)
  const { busy, error, run } = useAction()
  const schemeId = useId()
  const url = summary.webhookUrl
  return (
    <div className="webhook">
      <div className="field">
        <label htmlFor={schemeId}>Signature scheme</label>
        <select id={schemeId} value={(t.scheme as string) ?? 'standard'} onChange={(e) => onChange({ scheme: e.target.value })}>
          {['standard', 'github', 'stripe', 'slack', 'none'].map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </div>
      <Text label="Secret from environment variable (optional)" value={t.secretEnv as string} onChange={(v) => onChange({ secretEnv: v })} placeholder="ORDER_ALERT_SECRET" />
      <div className="field">
        <span className="label">URL</span>
        {url ? (
          <div className="row">
            <code className="url" data-testid="webhook-url">
              {url}
            </code>
            <button
              type="button"
              onClick={async () => {
                try {
                  await navigator.clipboard.writeText(url)
                  setCopied(true)
                } catch {
                  setCopied(false)
                }
              }}
            >
              {copied ? 'Copied' : 'Copy'}
            </button>
          </div>
        ) : (
          <div className="muted small">The URL appears once the workflow is published.</div>
        )}
      </div>
      {!readOnly && url && (
        <button
          type="button"
          onClick={async () => {
            const out = await run('Rotating the URL…', () => api<Summary>('POST', `/workflows/${encodeURIComponent(summary.id)}/webhook/rotate`))
            if (out) setSummary({ ...summary, ...out })
          }}
          disabled={!!busy}
        >
          Rotate URL (the old one stops working)
        </button>
      )}
      {(t.scheme ?? 'standard') !== 'none' && !readOnly && (
        <div className="field">
          <label htmlFor="webhook-secret">Signing secret(s), comma-separated during a rotation</label>
          <div className="row">
            <input id="webhook-secret" type="password" value={secret} onChange={(e) => setSecret(e.target.value)} placeholder="whsec_…" autoComplete="off" />
            <button
              type="button"
              disabled={!!busy}
              onClick={async () => {
                const secrets = secret.split(',').map((s) => s.trim()).filter(Boolean)
                const out = await run('Storing the secret…', () => api<Summary>('PUT', `/workflows/${encodeURIComponent(summary.id)}/webhook/secrets`, { secrets }))
                if (out) {
                  setSummary({ ...summary, ...out })
                  setSecret('')
                }
              }}
              data-testid="set-secret"
            >
              {secret.trim() ? 'Set secret' : 'Remove secrets'}
            </button>
          </div>
          <div className="muted small">{summary.hasWebhookSecret ? 'A secret is set (never shown again).' : 'No secret stored through the API.'}</div>
        </div>
      )}
      {busy && <Busy label={busy} />}
      <ErrorBox error={error} />
    </div>
  )
}
