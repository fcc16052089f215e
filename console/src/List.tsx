// Automations: every workflow with its state, triggers and last run; New automation.

import { useEffect, useState } from 'react'
import { api, ApiError, type ExecutionRecord, type Page, type Summary, type WorkflowAnswer } from './api'
import { go } from './nav'
import { ago, Busy, ErrorBox, ListTable, Modal, StatusBadge, useAction } from './ui'
import type { Workflow } from './model'

interface Row {
  summary: Summary
  triggers: string[]
  last: ExecutionRecord | null | undefined
}

// Small inline icons (no icon font, no emoji font needed).
const TRIGGER_ICON: Record<string, string> = {
  webhook: 'M4 12a4 4 0 0 1 4-4h3v2H8a2 2 0 0 0 0 4h3v2H8a4 4 0 0 1-4-4zm9-4h3a4 4 0 0 1 0 8h-3v-2h3a2 2 0 0 0 0-4h-3zm-4 3h6v2H9z',
  schedule: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zm0 2a7 7 0 1 1 0 14 7 7 0 0 1 0-14zm-1 2v6l5 3 1-1.7-4-2.3V7z',
  event: 'M13 2 4 14h6l-1 8 9-12h-6z',
  manual: 'M8 5v14l11-7z',
}

export function triggerIcons(types: string[]) {
  return (
    <span className="triggers">
      {types.map((t, i) => (
        <svg key={i} className={`trigger t-${t}`} viewBox="0 0 24 24" width="16" height="16" role="img" aria-label={`${t} trigger`}>
          <title>{t}</title>
          <path d={TRIGGER_ICON[t] ?? 'M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z'} fill="currentColor" />
        </svg>
      ))}
    </span>
  )
}

export function stateLabel(s: Summary) {
  if (s.latestVersion === 0) return <span className="badge draft">draft</span>
  return (
    <>
      <span className="badge published">published v{s.latestVersion}</span>{' '}
      {s.active ? <span className="badge active">active v{s.activeVersion}</span> : <span className="badge inactive">inactive</span>}
    </>
  )
}

export function List() {
  const [rows, setRows] = useState<Row[] | null>(null)
  const [error, setError] = useState<unknown>(null)
  const [creating, setCreating] = useState(false)
  useEffect(() => {
    let live = true
    ;(async () => {
      try {
        const list = await api<Summary[]>('GET', '/workflows')
        const base = list.map((summary) => ({ summary, triggers: [] as string[], last: undefined as ExecutionRecord | null | undefined }))
        if (!live) return
        setRows(base)
        // Details per workflow (triggers from the draft, last run), filled in as they come.
        await Promise.all(
          list.map(async (s, i) => {
            const [w, page] = await Promise.all([
              api<WorkflowAnswer>('GET', `/workflows/${encodeURIComponent(s.id)}`).catch(() => null),
              api<Page<ExecutionRecord>>('GET', `/executions?workflowId=${encodeURIComponent(s.id)}&limit=1`).catch(() => null),
            ])
            const start = (w?.draft as Workflow | undefined)?.steps?.find((x) => x?.type === 'start')
            const triggers = Array.isArray(start?.triggers) ? (start!.triggers as { type: string }[]).map((t) => t?.type) : []
            if (!live) return
            setRows((prev) => {
              if (!prev) return prev
              const next = [...prev]
              next[i] = { summary: s, triggers, last: page ? (page.items[0] ?? null) : null }
              return next
            })
          }),
        )
      } catch (e) {
        if (live) setError(e)
      }
    })()
    return () => {
      live = false
    }
  }, [])
  return (
    <section className="page">
      <div className="page-head">
        <h1>Automations</h1>
        <button className="primary" onClick={() => setCreating(true)}>
          New automation
        </button>
      </div>
      <ErrorBox error={error} />
      {!rows && !error && <Busy label="Loading automations…" />}
      <ListTable
        rows={rows}
        testId="automations"
        columns={['Name', 'State', 'Triggers', 'Last run']}
        empty="No automations yet. Create one, or put a workflow file in workflows/."
        row={({ summary: s, triggers, last }) => (
          <tr key={s.id} data-id={s.id}>
            <td>
              <a href={`#/w/${encodeURIComponent(s.id)}`}>{s.name || s.id}</a>
              <div className="muted small">
                {s.id}
                {s.source?.startsWith('file:') && <> · {s.source.slice(5)}</>}
              </div>
            </td>
            <td>{stateLabel(s)}</td>
            <td>{triggerIcons(triggers)}</td>
            <td>
              {last === undefined ? (
                <span className="muted">…</span>
              ) : last === null ? (
                <StatusBadge status={null} />
              ) : (
                <a href={`#/x/${encodeURIComponent(last.id)}`}>
                  <StatusBadge status={last.status} /> <span className="muted small">{ago(last.startedAt)}</span>
                </a>
              )}
            </td>
          </tr>
        )}
      />
      {creating && <NewAutomation onClose={() => setCreating(false)} />}
    </section>
  )
}

function NewAutomation({ onClose }: { onClose: () => void }) {
  const [name, setName] = useState('')
  const [description, setDescription] = useState('')
  const { busy, error, run } = useAction()
  const submit = async () => {
    const body = description.trim() ? { name: name.trim(), description: description.trim() } : { name: name.trim() }
    const out = await run(description.trim() ? 'The AI is writing the workflow (this can take a minute)…' : 'Creating…', () =>
      api<{ id: string }>('POST', '/workflows/generate', body),
    )
    if (out?.id) {
      onClose()
      go('w', out.id, ...(description.trim() ? ['canvas', 'chat'] : []))
    }
  }
  return (
    <Modal title="New automation" onClose={onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void submit()
        }}
      >
        <div className="field">
          <label htmlFor="new-name">Name</label>
          <input id="new-name" value={name} onChange={(e) => setName(e.target.value)} required placeholder="High-value order alert" />
        </div>
        <div className="field">
          <label htmlFor="new-desc">Description (optional)</label>
          <textarea
            id="new-desc"
            rows={4}
            value={description}
            onChange={(e) => setDescription(e.target.value)}
            placeholder="When an order over 100 arrives by webhook, post it to Slack. Leave empty for an empty draft."
          />
          <div className="muted small">With a description the configured AI model writes a draft (never published or activated); without one you start from a start step.</div>
        </div>
        <ErrorBox error={error} />
        {error instanceof ApiError && error.problems.length > 0 && (
          <ul className="problems">
            {error.problems.map((p, i) => (
              <li key={i}>
                <code>{p.pointer}</code> {p.message} {p.hint && <span className="hint">— {p.hint}</span>}
              </li>
            ))}
          </ul>
        )}
        <div className="row">
          <button type="submit" className="primary" disabled={!name.trim() || !!busy}>
            {description.trim() ? 'Generate draft' : 'Create empty draft'}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          {busy && <Busy label={busy} />}
        </div>
      </form>
    </Modal>
  )
}
