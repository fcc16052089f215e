// Small shared pieces: error boxes (message + hint), progress, JSON blocks, dialogs, badges.

import { useEffect, useId, useRef, useState, type ReactNode } from 'react'
import { ApiError } from './api'

export function errorParts(e: unknown): { message: string; hint: string; code: string } {
  if (e instanceof ApiError) return { message: e.message, hint: e.hint, code: e.code }
  if (e instanceof Error) return { message: e.message, hint: '', code: 'error' }
  return { message: String(e), hint: '', code: 'error' }
}

export function ErrorBox({ error, onClose }: { error: unknown; onClose?: () => void }) {
  if (!error) return null
  const { message, hint, code } = errorParts(error)
  return (
    <div className="error" role="alert" data-code={code}>
      <strong>{message}</strong>
      {hint && <div className="hint">{hint}</div>}
      {onClose && (
        <button className="link" onClick={onClose} aria-label="Dismiss the error">
          Dismiss
        </button>
      )}
    </div>
  )
}

export function Busy({ label }: { label: string }) {
  return (
    <span className="busy" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {label}
    </span>
  )
}

/** Run an async action with progress and error state. */
export function useAction() {
  const [busy, setBusy] = useState<string | null>(null)
  const [error, setError] = useState<unknown>(null)
  const run = async <T,>(label: string, f: () => Promise<T>): Promise<T | undefined> => {
    setBusy(label)
    setError(null)
    try {
      return await f()
    } catch (e) {
      setError(e)
      return undefined
    } finally {
      setBusy(null)
    }
  }
  return { busy, error, setError, run }
}

/** Rows as a table under column headings, or the `empty` line when there are none (nothing
 * while `rows` is not loaded). */
export function ListTable<T>({ rows, testId, columns, empty, row }: { rows: T[] | null | undefined; testId: string; columns: string[]; empty: ReactNode; row: (item: T) => ReactNode }) {
  if (!rows) return null
  if (rows.length === 0) return <p className="muted">{empty}</p>
  return (
    <table className="list" data-testid={testId}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th scope="col" key={c}>
              {c}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{rows.map((item) => row(item))}</tbody>
    </table>
  )
}

const LIMIT = 2000

/** JSON, collapsible, long text truncated with "show all". */
export function JsonBlock({ value, label, open = true }: { value: unknown; label: string; open?: boolean }) {
  const [all, setAll] = useState(false)
  const text = value === undefined ? 'undefined' : JSON.stringify(value, null, 2)
  const long = text.length > LIMIT
  return (
    <details open={open} className="json">
      <summary>{label}</summary>
      <pre>{long && !all ? `${text.slice(0, LIMIT)}…` : text}</pre>
      {long && (
        <button className="link" onClick={() => setAll(!all)}>
          {all ? 'Show less' : `Show all (${text.length.toLocaleString()} characters)`}
        </button>
      )}
    </details>
  )
}

export function Modal({ title, children, onClose, wide }: { title: string; children: ReactNode; onClose: () => void; wide?: boolean }) {
  const id = useId()
  const ref = useRef<HTMLDivElement>(null)
  useEffect(() => {
    const esc = (e: KeyboardEvent) => e.key === 'Escape' && onClose()
    window.addEventListener('keydown', esc)
    ref.current?.querySelector<HTMLElement>('input, textarea, select, button')?.focus()
    return () => window.removeEventListener('keydown', esc)
  }, [onClose])
  return (
    <div className="backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className={`modal ${wide ? 'wide' : ''}`} role="dialog" aria-modal="true" aria-labelledby={id} ref={ref}>
        <h2 id={id}>{title}</h2>
        {children}
      </div>
    </div>
  )
}

export function StatusBadge({ status }: { status: string | null | undefined }) {
  if (!status) return <span className="badge none">never run</span>
  return <span className={`badge st-${status}`}>{status.replace('_', ' ')}</span>
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return ''
  const ms = Date.now() - Date.parse(iso)
  if (Number.isNaN(ms)) return iso
  const s = Math.round(ms / 1000)
  if (s < 60) return `${Math.max(s, 0)} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86400) return `${Math.round(s / 3600)} h ago`
  return `${Math.round(s / 86400)} d ago`
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—'
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`
}

/** A JSON textarea that only reports valid values (and optionally only objects). */
export function JsonField({
  label,
  value,
  onChange,
  objectOnly,
  rows = 6,
  disabled,
  id,
  testId,
  hint,
}: {
  label: string
  value: unknown
  onChange: (v: unknown) => void
  objectOnly?: boolean
  rows?: number
  disabled?: boolean
  id?: string
  testId?: string
  /** A description shown under the field (and read with it). */
  hint?: string
}) {
  const autoId = useId()
  const fid = id ?? autoId
  const [text, setText] = useState(() => (value === undefined ? '' : JSON.stringify(value, null, 2)))
  const [err, setErr] = useState('')
  const last = useRef(value)
  useEffect(() => {
    if (JSON.stringify(last.current) !== JSON.stringify(value)) {
      last.current = value
      setText(value === undefined ? '' : JSON.stringify(value, null, 2))
      setErr('')
    }
  }, [value])
  const change = (t: string) => {
    setText(t)
    if (!t.trim()) {
      setErr('')
      last.current = undefined
      onChange(undefined)
      return
    }
    try {
      const v = JSON.parse(t)
      if (objectOnly && (v === null || typeof v !== 'object' || Array.isArray(v))) {
        setErr('Must be a JSON object: { "key": value }')
        return
      }
      setErr('')
      last.current = v
      onChange(v)
    } catch (e) {
      setErr(`Not valid JSON: ${(e as Error).message}`)
    }
  }
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      <textarea id={fid} className="code" rows={rows} value={text} onChange={(e) => change(e.target.value)} disabled={disabled} aria-invalid={!!err} spellCheck={false} data-testid={testId} aria-describedby={hint ? `${fid}-hint` : undefined} />
      {hint && (
        <div className="muted small" id={`${fid}-hint`}>
          {hint}
        </div>
      )}
      {err && (
        <div className="field-error" role="alert">
          {err}
        </div>
      )}
    </div>
  )
}

export function TokenPrompt({ reason, done }: { reason: string; done: (t: string | null) => void }) {
  const [t, setT] = useState('')
  return (
    <Modal title="API token needed" onClose={() => done(null)}>
      <p>{reason}</p>
      <p className="muted">The token is kept in this tab's session storage only and sent as an Authorization header.</p>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          done(t.trim() || null)
        }}
      >
        <div className="field">
          <label htmlFor="token">Bearer token</label>
          <input id="token" type="password" value={t} onChange={(e) => setT(e.target.value)} autoComplete="off" />
        </div>
        <div className="row">
          <button type="submit" className="primary">
            Use token
          </button>
          <button type="button" onClick={() => done(null)}>
            Cancel
          </button>
        </div>
      </form>
    </Modal>
  )
}
