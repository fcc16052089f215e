// The side panel of a step: a form per step type generated from the workflow JSON Schema (see
// SchemaForm.tsx; action params from the action's params schema), the start step's triggers with
// their webhook URL, secrets and cron preview, and a raw JSON tab that edits the step exactly as it
// is saved.

import { useEffect, useId, useMemo, useState } from 'react'
import { actions, api, type ActionSpec, type CronAnswer, type Summary } from './api'
import { SchemaFields, StepFields, TRIGGER_TYPES, triggerVariant, TYPE_ONLY } from './SchemaForm'
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
  const [catalog, setCatalog] = useState<ActionSpec[] | null>(null)
  const [catalogError, setCatalogError] = useState<unknown>(null)
  useEffect(() => {
    actions().then(setCatalog, setCatalogError)
  }, [])
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
          <StepFields
            step={step}
            set={set}
            ctx={ctx}
            catalog={catalog}
            widgets={{ triggers: () => <StartForm ctx={ctx} summary={summary} setSummary={setSummary} /> }}
          />
          {step.type === 'loop' && <p className="muted small">The body is drawn inside the loop: select the loop and use Add step to add to it. Inside, use item and index.</p>}
          <ErrorBox error={catalogError} />
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
          {triggerVariant(String(t.type)) ? (
            <SchemaFields
              schema={triggerVariant(String(t.type))!}
              value={t}
              onChange={(v) => setTriggers(triggers.map((x, j) => (j === i ? v : x)))}
              ctx={t.type === 'event' ? { ...ctx, suggestions: ['event.detail.', 'event.type', 'event.id', 'vars.'] } : ctx}
              pointer={`/triggers/${i}`}
              skip={TYPE_ONLY}
              widgets={t.type === 'schedule' ? { cron: ({ value, onChange }) => <ScheduleTrigger cron={value as string} onCron={onChange} /> } : undefined}
            />
          ) : (
            <JsonField label="Trigger (JSON)" value={t} objectOnly onChange={(v) => v && setTriggers(triggers.map((x, j) => (j === i ? (v as Record<string, unknown>) : x)))} />
          )}
          {t.type === 'webhook' && <WebhookTrigger t={t} summary={summary} setSummary={setSummary} readOnly={ctx.readOnly} />}
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
          {TRIGGER_TYPES.map((type) => (
            <option key={type}>{type}</option>
          ))}
        </select>
      </div>
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

function WebhookTrigger({ t, summary, setSummary, readOnly }: { t: Record<string, unknown>; summary: Summary; setSummary: (s: Summary) => void; readOnly: boolean }) {
  const [secret, setSecret] = useState('')
  const [copied, setCopied] = useState(false)
  const { busy, error, run } = useAction()
  const url = summary.webhookUrl
  return (
    <div className="webhook">
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
