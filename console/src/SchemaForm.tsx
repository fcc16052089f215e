// Step forms generated from JSON Schema: the workflow schema that `wf schema` prints
// (workflows/schema.json, embedded in the build: the API does not serve it) gives one variant per
// step type (by the `type` discriminator); each action's params schema comes from `GET /actions`.
// A small generic renderer turns a schema into fields: strings (template completion where the
// field takes templates), numbers/integers with min/max, booleans, enums as selects, arrays of
// strings, objects with properties as nested groups, anything else as a JSON editor.

import { useId, useRef, useState, type ReactNode } from 'react'
import workflowSchema from '../../workflows/schema.json'
import type { ActionSpec } from './api'
import type { Problem, Step } from './model'
import { JsonField } from './ui'

export interface Schema {
  type?: string | string[]
  const?: unknown
  enum?: unknown[]
  oneOf?: Schema[]
  anyOf?: Schema[]
  $ref?: string
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema
  description?: string
  default?: unknown
  minimum?: number
  maximum?: number
  minLength?: number
  maxLength?: number
  pattern?: string
}

const ROOT = workflowSchema as unknown as Schema & { $defs: Record<string, Schema> }

/** Follows `$ref`s into `$defs`, folds "X or null" into X and a `oneOf` of constants into an enum. */
export function resolve(s: Schema | undefined, root: { $defs?: Record<string, Schema> } = ROOT): Schema {
  if (!s) return {}
  if (s.$ref) {
    const name = s.$ref.replace(/^#\/\$defs\//, '')
    const { $ref: _ignored, ...rest } = s
    return resolve({ ...root.$defs?.[name], ...rest, description: s.description ?? root.$defs?.[name]?.description }, root)
  }
  const alts = s.anyOf ?? s.oneOf
  if (alts) {
    const nonNull = alts.filter((a) => a.type !== 'null')
    if (nonNull.length === 1 && !s.properties) {
      const { anyOf: _a, oneOf: _o, ...rest } = s
      return resolve({ ...nonNull[0], ...rest, description: s.description ?? nonNull[0].description }, root)
    }
    if (nonNull.every((a) => a.const !== undefined)) {
      const { anyOf: _a, oneOf: _o, ...rest } = s
      return { ...rest, enum: nonNull.map((a) => a.const) }
    }
  }
  return s
}

/** The types of a schema without `null`. */
const typesOf = (s: Schema) => (Array.isArray(s.type) ? s.type : s.type ? [s.type] : []).filter((t) => t !== 'null')

/** The schema of one step type (the variant of `$defs.Step` whose `type` is that constant). */
export function stepVariant(type: string): Schema | undefined {
  return ROOT.$defs.Step.oneOf?.find((v) => v.properties?.type?.const === type)
}

/** The schema of one trigger type (the variant of `$defs.Trigger` whose `type` is that constant). */
export function triggerVariant(type: string): Schema | undefined {
  return ROOT.$defs.Trigger.oneOf?.find((v) => v.properties?.type?.const === type)
}

/** Every trigger type the schema knows, in schema order. */
export const TRIGGER_TYPES: string[] = (ROOT.$defs.Trigger.oneOf ?? []).map((v) => String(v.properties?.type?.const))

/** Only the discriminator is drawn elsewhere in a trigger. */
export const TYPE_ONLY = new Set(['type'])

/** Every step type the schema knows, in schema order. */
export const STEP_TYPES: string[] = (ROOT.$defs.Step.oneOf ?? []).map((v) => String(v.properties?.type?.const))

/** The constants of a `$defs` enum (e.g. `WebhookScheme`), in schema order. */
export const enumOf = (def: string): string[] => (resolve({ $ref: `#/$defs/${def}` }).enum ?? []).map(String)

export interface FieldCtx {
  suggestions: string[]
  siblings: string[]
  fieldProblem: (field: string) => Problem[]
}

/** Fields drawn elsewhere: the discriminator, the id (its own rename field), the canvas position, the loop body. */
const NOT_IN_FORM = new Set(['type', 'id', 'position', 'steps'])
/** Fields that name a step in the same scope: drawn as edges on the canvas, selects here. */
export const EDGE_FIELDS = new Set(['next', 'onError', 'else'])
/** String fields that take templates besides those whose description shows a `{{ expr }}`. */
const TEMPLATE_FIELDS = new Set(['prompt', 'system'])

export const humanize = (k: string) => {
  const words = k.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase()
  const s = words.replace(/\bms\b/, '(ms)').replace(/\bjson\b/, 'JSON').replace(/\burl\b/, 'URL')
  return s.charAt(0).toUpperCase() + s.slice(1)
}

const testIdOf = (pointer: string) => `field${pointer.replace(/\//g, '-')}`

export type Widget = (p: { value: unknown; onChange: (v: unknown) => void; label: string; pointer: string }) => ReactNode

interface FieldsProps {
  schema: Schema
  value: Record<string, unknown>
  onChange: (v: Record<string, unknown>) => void
  ctx: FieldCtx
  pointer: string
  /** Labels: humanized property names (step fields) or the raw keys (action params). */
  rawLabels?: boolean
  /** Every string takes templates (action params). */
  templates?: boolean
  widgets?: Record<string, Widget>
  skip?: Set<string>
}

const setKey = (obj: Record<string, unknown>, k: string, v: unknown) => {
  const next = { ...obj, [k]: v }
  if (v === undefined || v === '') delete next[k]
  return next
}

/** The properties of an object schema, one field each, in schema order. */
export function SchemaFields({ schema, value, onChange, ctx, pointer, rawLabels, templates, widgets, skip }: FieldsProps) {
  const s = resolve(schema)
  return (
    <>
      {Object.entries(s.properties ?? {})
        .filter(([k]) => !skip?.has(k))
        .map(([k, p]) => {
          const required = !!s.required?.includes(k)
          const label = `${rawLabels ? k : humanize(k)}${required ? ' (required)' : ''}`
          const ptr = `${pointer}/${k}`
          const onField = (v: unknown) => onChange(setKey(value, k, v))
          const w = widgets?.[k]
          if (w) return <Slot key={k}>{w({ value: value[k], onChange: onField, label, pointer: ptr })}</Slot>
          return (
            <SchemaField
              key={k}
              name={k}
              schema={p}
              value={value[k]}
              onChange={onField}
              label={label}
              required={required}
              ctx={ctx}
              pointer={ptr}
              rawLabels={rawLabels}
              templates={templates}
              widgets={widgets}
            />
          )
        })}
    </>
  )
}

const Slot = ({ children }: { children: ReactNode }) => <>{children}</>

interface FieldProps {
  name: string
  schema: Schema
  value: unknown
  onChange: (v: unknown) => void
  label: string
  required: boolean
  ctx: FieldCtx
  pointer: string
  rawLabels?: boolean
  templates?: boolean
  widgets?: Record<string, Widget>
}

/** One property: the widget follows the (resolved) schema, and the JSON editor when the value does not fit it. */
export function SchemaField(props: FieldProps) {
  const { name, value, onChange, label, required, ctx, pointer, templates } = props
  const s = resolve(props.schema)
  const types = typesOf(s)
  const testId = testIdOf(pointer)
  const hint = s.description
  const json = (objectOnly = false) => <JsonField label={`${label} (JSON)`} value={value} onChange={onChange} objectOnly={objectOnly} rows={3} testId={testId} hint={hint} />
  if (EDGE_FIELDS.has(name))
    return <EdgeSelect label={label} value={value as string} options={ctx.siblings} onChange={onChange} hint={hint} testId={testId} />
  const isTemplate = templates || TEMPLATE_FIELDS.has(name) || !!hint?.includes('{{')
  // A template where a number or a boolean is expected (action params): keep it a string.
  if (typeof value === 'string' && isTemplate && !types.includes('string') && value.includes('{{'))
    return <TemplateInput label={label} value={value} onChange={onChange} ctx={ctx} field={pointer} testId={testId} hint={hint} required={required} />
  if (s.enum) {
    if (value !== undefined && !s.enum.includes(value)) return json()
    return <EnumField label={label} value={value as string} options={s.enum.map(String)} onChange={onChange} hint={hint} testId={testId} placeholder={s.default !== undefined ? `(default: ${s.default})` : '(none)'} required={required} />
  }
  if (types.length === 1 && types[0] === 'string') {
    if (value !== undefined && value !== null && typeof value !== 'string') return json()
    if (isTemplate) return <TemplateInput label={label} value={value as string} onChange={onChange} ctx={ctx} field={pointer} testId={testId} hint={hint} required={required} multiline={TEMPLATE_FIELDS.has(name)} />
    return <TextField label={label} value={value as string} onChange={onChange} hint={hint} testId={testId} required={required} maxLength={s.maxLength} problems={ctx.fieldProblem(pointer)} />
  }
  if (types.length === 1 && (types[0] === 'integer' || types[0] === 'number')) {
    if (value !== undefined && value !== null && typeof value !== 'number') return json()
    return <NumberField label={label} value={value as number} onChange={onChange} hint={hint} testId={testId} required={required} min={s.minimum} max={s.maximum} integer={types[0] === 'integer'} placeholder={s.default !== undefined ? `default ${s.default}` : undefined} problems={ctx.fieldProblem(pointer)} />
  }
  if (types.length === 1 && types[0] === 'boolean') {
    if (value !== undefined && value !== null && typeof value !== 'boolean') return json()
    return <BoolField label={label} value={value as boolean | undefined} def={s.default === true} onChange={onChange} hint={hint} testId={testId} />
  }
  if (types.length === 1 && types[0] === 'array') {
    const items = resolve(s.items)
    const itemTypes = typesOf(items)
    const list = value === undefined || value === null ? [] : value
    if (!Array.isArray(list)) return json()
    if (itemTypes.length === 1 && itemTypes[0] === 'string' && !items.enum && list.every((x) => typeof x === 'string'))
      return <StringList label={label} value={list as string[]} onChange={onChange} hint={hint} testId={testId} />
    if (items.properties && list.every((x) => x && typeof x === 'object' && !Array.isArray(x)))
      return <ObjectList {...props} schema={items} value={list as Record<string, unknown>[]} hint={hint} />
    return json()
  }
  if (types.length === 1 && types[0] === 'object') {
    if (!s.properties) return json(true)
    if (value !== undefined && value !== null && (typeof value !== 'object' || Array.isArray(value))) return json()
    const obj = (value ?? {}) as Record<string, unknown>
    return (
      <details className="sub" open={Object.keys(obj).length > 0} data-testid={testId}>
        <summary>{label}</summary>
        {hint && <div className="muted small">{hint}</div>}
        <SchemaFields {...props} schema={s} value={obj} onChange={(v) => onChange(Object.keys(v).length ? v : undefined)} />
      </details>
    )
  }
  return json()
}

function Hint({ id, text }: { id: string; text?: string }) {
  return text ? (
    <div className="muted small" id={id}>
      {text}
    </div>
  ) : null
}

function Problems({ problems }: { problems: Problem[] }) {
  return (
    <>
      {problems.map((p, i) => (
        <div key={i} className="field-error">
          {p.message} {p.hint && <span className="hint">— {p.hint}</span>}
        </div>
      ))}
    </>
  )
}

function TextField(p: { label: string; value: string | undefined; onChange: (v: string) => void; hint?: string; testId?: string; required?: boolean; maxLength?: number; problems: Problem[] }) {
  const id = useId()
  return (
    <div className="field">
      <label htmlFor={id}>{p.label}</label>
      <input id={id} value={p.value ?? ''} onChange={(e) => p.onChange(e.target.value)} aria-describedby={p.hint ? `${id}-hint` : undefined} aria-required={p.required} aria-invalid={p.problems.length > 0} maxLength={p.maxLength} data-testid={p.testId} />
      <Hint id={`${id}-hint`} text={p.hint} />
      <Problems problems={p.problems} />
    </div>
  )
}

function NumberField(p: { label: string; value: number | undefined; onChange: (v: number | undefined) => void; hint?: string; testId?: string; required?: boolean; min?: number; max?: number; integer: boolean; placeholder?: string; problems: Problem[] }) {
  const id = useId()
  const out = p.value !== undefined && ((p.min !== undefined && p.value < p.min) || (p.max !== undefined && p.value > p.max))
  return (
    <div className="field">
      <label htmlFor={id}>{p.label}</label>
      <input
        id={id}
        type="number"
        value={p.value ?? ''}
        min={p.min}
        max={p.max}
        step={p.integer ? 1 : 'any'}
        placeholder={p.placeholder}
        aria-describedby={p.hint ? `${id}-hint` : undefined}
        aria-required={p.required}
        aria-invalid={out || p.problems.length > 0}
        data-testid={p.testId}
        onChange={(e) => p.onChange(e.target.value === '' ? undefined : Number(e.target.value))}
      />
      <Hint id={`${id}-hint`} text={p.hint} />
      {out && <div className="field-error">Between {p.min ?? '−∞'} and {p.max ?? '∞'}.</div>}
      <Problems problems={p.problems} />
    </div>
  )
}

function BoolField(p: { label: string; value: boolean | undefined; def: boolean; onChange: (v: boolean | undefined) => void; hint?: string; testId?: string }) {
  const id = useId()
  return (
    <div className="field">
      <label>
        <input type="checkbox" checked={p.value ?? p.def} onChange={(e) => p.onChange(e.target.checked === p.def ? undefined : e.target.checked)} aria-describedby={p.hint ? `${id}-hint` : undefined} data-testid={p.testId} /> {p.label}
      </label>
      <Hint id={`${id}-hint`} text={p.hint} />
    </div>
  )
}

export function EnumField(p: { label: string; value: string | undefined; options: string[]; onChange: (v: string | undefined) => void; hint?: string; testId?: string; placeholder?: string; required?: boolean }) {
  const id = useId()
  return (
    <div className="field">
      <label htmlFor={id}>{p.label}</label>
      <select id={id} value={p.value ?? ''} onChange={(e) => p.onChange(e.target.value || undefined)} aria-describedby={p.hint ? `${id}-hint` : undefined} aria-required={p.required} data-testid={p.testId}>
        <option value="">{p.placeholder ?? '(default)'}</option>
        {p.options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
      <Hint id={`${id}-hint`} text={p.hint} />
    </div>
  )
}

export function EdgeSelect(p: { label: string; value: string | null | undefined; options: string[]; onChange: (v: string | undefined) => void; hint?: string; testId?: string }) {
  const id = useId()
  return (
    <div className="field">
      <label htmlFor={id}>{p.label}</label>
      <select id={id} value={p.value ?? ''} onChange={(e) => p.onChange(e.target.value || undefined)} aria-describedby={p.hint ? `${id}-hint` : undefined} data-testid={p.testId}>
        <option value="">— none (the path ends) —</option>
        {p.value && !p.options.includes(p.value) && <option value={p.value}>{p.value} (missing)</option>}
        {p.options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
      <Hint id={`${id}-hint`} text={p.hint} />
    </div>
  )
}

/** An array of strings: one item per line. */
function StringList(p: { label: string; value: string[]; onChange: (v: string[] | undefined) => void; hint?: string; testId?: string }) {
  const id = useId()
  const [text, setText] = useState(p.value.join('\n'))
  const last = useRef(p.value)
  if (last.current.join('\n') !== p.value.join('\n')) {
    last.current = p.value
    if (text.split('\n').filter((l) => l !== '').join('\n') !== p.value.join('\n')) setText(p.value.join('\n'))
  }
  return (
    <div className="field">
      <label htmlFor={id}>{p.label} (one per line)</label>
      <textarea
        id={id}
        rows={3}
        value={text}
        spellCheck={false}
        aria-describedby={p.hint ? `${id}-hint` : undefined}
        data-testid={p.testId}
        onChange={(e) => {
          setText(e.target.value)
          const items = e.target.value.split('\n').filter((l) => l !== '')
          last.current = items
          p.onChange(items.length ? items : undefined)
        }}
      />
      <Hint id={`${id}-hint`} text={p.hint} />
    </div>
  )
}

/** An array of objects with properties (e.g. a condition's branches): a group per item, add and remove. */
function ObjectList(p: FieldProps & { value: Record<string, unknown>[]; hint?: string }) {
  const items = p.value
  const set = (next: Record<string, unknown>[]) => p.onChange(next)
  const singular = humanize(p.name).replace(/es$|s$/, '')
  const fresh = () => {
    const o: Record<string, unknown> = {}
    for (const k of p.schema.required ?? []) {
      const s = resolve(p.schema.properties?.[k])
      if (s.default !== undefined) o[k] = s.default
      else if (s.description?.includes('{{')) o[k] = '{{ true }}'
    }
    return o
  }
  return (
    <fieldset className="group" data-testid={testIdOf(p.pointer)}>
      <legend>{p.label}</legend>
      {p.hint && <div className="muted small">{p.hint}</div>}
      {items.map((item, i) => (
        <div className="branch" key={i}>
          <SchemaFields
            schema={p.schema}
            value={item}
            onChange={(v) => set(items.map((x, j) => (j === i ? v : x)))}
            ctx={p.ctx}
            pointer={`${p.pointer}/${i}`}
            rawLabels={p.rawLabels}
            templates={p.templates}
          />
          <button type="button" className="link" onClick={() => set(items.filter((_, j) => j !== i))}>
            Remove {singular.toLowerCase()} {i + 1}
          </button>
        </div>
      ))}
      <button type="button" onClick={() => set([...items, fresh()])}>
        + {singular}
      </button>
    </fieldset>
  )
}

/** A text field with completion after `{{ `: input., vars., steps.<id>.output, item, index, secrets. */
export function TemplateInput({ label, value, onChange, ctx, field, multiline, testId, hint, required }: { label: string; value: string | undefined; onChange: (v: string) => void; ctx: FieldCtx; field?: string; multiline?: boolean; testId?: string; hint?: string; required?: boolean }) {
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
    'aria-describedby': hint ? `${id}-hint` : undefined,
    'aria-required': required,
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
      <Hint id={`${id}-hint`} text={hint} />
      <Problems problems={problems} />
    </div>
  )
}

interface StepFieldsProps {
  step: Step
  set: (patch: Partial<Step>) => void
  ctx: FieldCtx
  /** The action catalogue (`GET /actions`); null while it loads. */
  catalog: ActionSpec[] | null
  /** Hand-made parts the schema cannot describe (the start step's triggers: URL, secrets, cron preview). */
  widgets?: Record<string, Widget>
}

/** The form of a step: its type's variant of the workflow schema, action params from the action's schema. */
export function StepFields({ step, set, ctx, catalog, widgets }: StepFieldsProps) {
  const variant = stepVariant(step.type)
  if (!variant) return <JsonField label="Step (JSON)" value={step} onChange={(v) => v && typeof v === 'object' && set(v as Partial<Step>)} objectOnly />
  const spec = catalog?.find((a) => a.name === step.action)
  const all: Record<string, Widget> = {
    action: ({ value, onChange, label }) => <ActionSelect value={value as string} onChange={onChange} label={label} catalog={catalog} />,
    params: ({ value, onChange, label, pointer }) => {
      const params = (value && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<string, unknown>
      if (!spec || !spec.paramsSchema.properties || (value !== undefined && params !== value))
        return catalog || value !== undefined ? <JsonField label={`${label} (JSON)`} value={value} onChange={onChange} objectOnly testId="field-params" /> : null
      return (
        <fieldset className="group" data-testid="field-params">
          <legend>Params of {spec.name}</legend>
          <SchemaFields schema={spec.paramsSchema as Schema} value={params} onChange={(v) => onChange(v)} ctx={ctx} pointer={pointer} rawLabels templates />
        </fieldset>
      )
    },
    ...widgets,
  }
  const patch = (v: Record<string, unknown>) => {
    const out: Partial<Step> = {}
    for (const k of Object.keys(variant.properties ?? {})) if (!NOT_IN_FORM.has(k) && v[k] !== (step as Record<string, unknown>)[k]) out[k] = v[k]
    set(out)
  }
  return <SchemaFields schema={variant} value={step as Record<string, unknown>} onChange={patch} ctx={ctx} pointer="" widgets={all} skip={NOT_IN_FORM} />
}

function ActionSelect({ value, onChange, label, catalog }: { value: string | undefined; onChange: (v: string) => void; label: string; catalog: ActionSpec[] | null }) {
  const id = useId()
  const spec = catalog?.find((a) => a.name === value)
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)} aria-describedby={spec ? `${id}-hint` : undefined} data-testid="field-action">
        {!spec && <option value={String(value ?? '')}>{String(value ?? '—')}</option>}
        {catalog?.map((a) => (
          <option key={a.name} value={a.name}>
            {a.name}
          </option>
        ))}
      </select>
      <Hint id={`${id}-hint`} text={spec?.description} />
    </div>
  )
}
