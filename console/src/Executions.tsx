// Executions: the filtered, cursor-paged list of a workflow's runs, and one execution: the graph
// with per-step status, a virtualised waterfall of the step records in start order, each
// record's input / output / error, Cancel and Rerun from a step.

import { useEffect, useMemo, useRef, useState } from 'react'
import { ReactFlowProvider } from '@xyflow/react'
import { api, follow, TERMINAL, withAllSteps, type EventRejection, type ExecutionRecord, type ExecutionView, type Page, type StepRecord, type WorkflowAnswer } from './api'
import { Canvas } from './Canvas'
import { nodeStatuses } from './Editor'
import { go } from './nav'
import { recordPathToNode, type Workflow } from './model'
import { ago, Busy, ErrorBox, JsonBlock, JsonField, ListTable, Modal, ms, StatusBadge, useAction } from './ui'

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled']
const TRIGGERS = ['webhook', 'schedule', 'event', 'manual', 'test', 'rerun']

export function ExecutionList({ workflowId }: { workflowId: string }) {
  const [filters, setFilters] = useState({ status: '', trigger: '', version: '', startedAfter: '', startedBefore: '' })
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const [page, setPage] = useState<Page<ExecutionRecord> | null>(null)
  const { busy, error, run } = useAction()
  const cursor = cursors[cursors.length - 1]
  useEffect(() => {
    const q = new URLSearchParams()
    if (filters.status) q.set('status', filters.status)
    if (filters.trigger) q.set('trigger', filters.trigger)
    if (filters.version) q.set('version', filters.version)
    if (filters.startedAfter) q.set('startedAfter', new Date(filters.startedAfter).toISOString())
    if (filters.startedBefore) q.set('startedBefore', new Date(filters.startedBefore).toISOString())
    q.set('limit', '25')
    if (cursor) q.set('cursor', cursor)
    void run('Loading executions…', async () => setPage(await api<Page<ExecutionRecord>>('GET', `/workflows/${encodeURIComponent(workflowId)}/executions?${q}`)))
  }, [workflowId, filters, cursor]) // eslint-disable-line react-hooks/exhaustive-deps
  const setF = (k: keyof typeof filters, v: string) => {
    setFilters({ ...filters, [k]: v })
    setCursors([null])
  }
  const sel = (k: 'status' | 'trigger', label: string, options: string[]) => (
    <div className="field">
      <label htmlFor={`f-${k}`}>{label}</label>
      <select id={`f-${k}`} value={filters[k]} onChange={(e) => setF(k, e.target.value)}>
        <option value="">any</option>
        {options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    </div>
  )
  return (
    <div className="page executions">
      <div className="filters" role="search">
        {sel('status', 'Status', STATUSES)}
        {sel('trigger', 'Trigger', TRIGGERS)}
        <div className="field">
          <label htmlFor="f-version">Version</label>
          <input id="f-version" type="number" min={1} value={filters.version} onChange={(e) => setF('version', e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="f-after">Started after</label>
          <input id="f-after" type="datetime-local" value={filters.startedAfter} onChange={(e) => setF('startedAfter', e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="f-before">Started before</label>
          <input id="f-before" type="datetime-local" value={filters.startedBefore} onChange={(e) => setF('startedBefore', e.target.value)} />
        </div>
      </div>
      <ErrorBox error={error} />
      {busy && <Busy label={busy} />}
      <ListTable
        rows={page?.items}
        testId="executions"
        columns={['Execution', 'Status', 'Trigger', 'Version', 'Started', 'Duration']}
        empty="No execution matches."
        row={(x) => (
          <tr key={x.id}>
            <td>
              <a href={`#/x/${encodeURIComponent(x.id)}`}>{x.id}</a>
            </td>
            <td>
              <StatusBadge status={x.status} />
            </td>
            <td>{x.trigger?.type}</td>
            <td>{x.version >= 2 ** 31 ? 'draft' : `v${x.version}`}</td>
            <td title={x.startedAt}>{ago(x.startedAt)}</td>
            <td>{ms(x.durationMs)}</td>
          </tr>
        )}
      />
      <div className="row">
        <button disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button disabled={!page?.nextCursor} onClick={() => page?.nextCursor && setCursors([...cursors, page.nextCursor])}>
          Older
        </button>
      </div>
    </div>
  )
}

/** What each rejection reason means, in the words of the fix. */
const REJECTION_REASONS: Record<EventRejection['reason'], string> = {
  filter: 'the trigger filter failed',
  input: 'the event detail does not match the input schema',
  start: 'the start was refused',
  depth: 'the event chain is too deep',
  revisit: 'the event chain revisits this workflow too often',
}

/** Events this workflow subscribes to that started nothing, and why: newest first, paged. */
export function RejectedEvents({ workflowId }: { workflowId: string }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const [page, setPage] = useState<Page<EventRejection> | null>(null)
  const { busy, error, run } = useAction()
  const cursor = cursors[cursors.length - 1]
  useEffect(() => {
    const q = new URLSearchParams({ limit: '10' })
    if (cursor) q.set('cursor', cursor)
    void run('Loading rejected events…', async () =>
      setPage(await api<Page<EventRejection>>('GET', `/workflows/${encodeURIComponent(workflowId)}/rejected-events?${q}`)),
    )
  }, [workflowId, cursor]) // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <section className="page rejected-events" aria-labelledby="rejected-title">
      <h2 id="rejected-title">Events that started nothing</h2>
      <p className="muted">An event of a subscribed type whose filter failed, whose detail did not match the input schema, or whose chain was at its bound. A false filter is not listed.</p>
      <ErrorBox error={error} />
      {busy && <Busy label={busy} />}
      <ListTable
        rows={page?.items}
        testId="rejected-events"
        columns={['Event', 'Type', 'Why', 'Message', 'When']}
        empty="No event was rejected."
        row={(r) => (
          <tr key={`${r.eventTime}-${r.eventId}`}>
            <td>
              <code>{r.eventId}</code>
            </td>
            <td>{r.eventType}</td>
            <td title={REJECTION_REASONS[r.reason]}>{r.reason}</td>
            <td className="message">{r.message}</td>
            <td title={r.eventTime}>{ago(r.eventTime)}</td>
          </tr>
        )}
      />
      {(cursors.length > 1 || page?.nextCursor) && (
        <div className="row">
          <button disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>
            Newer events
          </button>
          <button disabled={!page?.nextCursor} onClick={() => page?.nextCursor && setCursors([...cursors, page.nextCursor])}>
            Older events
          </button>
        </div>
      )}
    </section>
  )
}

export function ExecutionPage({ id }: { id: string }) {
  const [view, setView] = useState<ExecutionView | null>(null)
  const [wf, setWf] = useState<Workflow | null>(null)
  const [wfNote, setWfNote] = useState('')
  const [error, setError] = useState<unknown>(null)
  const [selected, setSelected] = useState<string | null>(null)
  const [rerun, setRerun] = useState(false)
  const action = useAction()
  useEffect(() => {
    let stop: (() => void) | null = null
    let live = true
    ;(async () => {
      try {
        const v = await withAllSteps(await api<ExecutionView>('GET', `/executions/${encodeURIComponent(id)}`))
        if (!live) return
        setView(v)
        window.__wfOpened = performance.now()
        const isDraft = v.version >= 2 ** 31
        const def = isDraft
          ? (await api<WorkflowAnswer>('GET', `/workflows/${encodeURIComponent(v.workflowId)}`)).draft
          : await api<Workflow>('GET', `/workflows/${encodeURIComponent(v.workflowId)}/versions/${v.version}`)
        if (!live) return
        setWf(def)
        if (isDraft) setWfNote('A test run of the draft: the graph shows the current draft.')
        if (!TERMINAL.includes(v.status)) {
          const records = new Map(v.steps.map((s) => [s.path, s]))
          stop = follow(id, {
            execution: (x) => setView((cur) => (cur ? { ...cur, ...x, steps: cur.steps } : cur)),
            step: (s) => {
              records.set(s.path, s)
              setView((cur) => (cur ? { ...cur, steps: [...records.values()] } : cur))
            },
            end: (full) => void withAllSteps(full).then((v) => live && setView(v)),
          })
        }
      } catch (e) {
        if (live) setError(e)
      }
    })()
    return () => {
      live = false
      stop?.()
    }
  }, [id])
  const statuses = useMemo(() => (view ? nodeStatuses(view.steps) : undefined), [view])
  const ordered = useMemo(() => (view ? startOrder(view.steps) : []), [view])
  if (error) return <section className="page"><ErrorBox error={error} /></section>
  if (!view) return <section className="page"><Busy label="Loading the execution…" /></section>
  const record = selected ? view.steps.find((s) => s.path === selected) : null
  const cancel = async () => {
    const out = await action.run('Cancelling…', () => api<ExecutionView>('POST', `/executions/${encodeURIComponent(id)}/cancel`))
    if (out) setView(await withAllSteps(out))
  }
  return (
    <section className="execution" data-testid="execution" data-status={view.status}>
      <div className="editor-head">
        <div>
          <h1>
            Execution <span className="mono">{view.id}</span>
          </h1>
          <div className="head-meta">
            <StatusBadge status={view.status} /> <a href={`#/w/${encodeURIComponent(view.workflowId)}/executions`}>{view.workflowId}</a> · {view.version >= 2 ** 31 ? 'draft test run' : `v${view.version}`} · trigger {view.trigger?.type} ·
            started {ago(view.startedAt)} · {ms(view.durationMs)} · {view.steps.length.toLocaleString()} step record(s)
            {view.rerunOf && (
              <>
                {' '}· rerun of <a href={`#/x/${encodeURIComponent(view.rerunOf)}`}>{view.rerunOf.slice(-8)}</a>
              </>
            )}
          </div>
        </div>
        <div className="head-actions">
          {!TERMINAL.includes(view.status) && (
            <button onClick={cancel} disabled={!!action.busy} data-testid="cancel">
              Cancel
            </button>
          )}
          {view.version < 2 ** 31 && (
            <button onClick={() => setRerun(true)} data-testid="rerun">
              Rerun…
            </button>
          )}
          {action.busy && <Busy label={action.busy} />}
        </div>
      </div>
      <ErrorBox error={action.error} />
      {wfNote && <div className="notice">{wfNote}</div>}
      <div className="exec-grid">
        <div className="exec-graph">
          {wf ? (
            <ReactFlowProvider>
              <Canvas workflow={wf} readOnly statuses={statuses} selected={selected ? recordPathToNode(selected) : null} onSelect={(p) => p && setSelected(ordered.find((s) => recordPathToNode(s.path) === p)?.path ?? null)} label="Execution graph" />
            </ReactFlowProvider>
          ) : (
            <Busy label="Loading the graph…" />
          )}
        </div>
        <div className="exec-side">
          <Waterfall steps={ordered} start={Date.parse(view.startedAt)} end={view.finishedAt ? Date.parse(view.finishedAt) : Date.now()} selected={selected} onSelect={setSelected} />
          {record ? (
            <div className="record" data-testid="record" data-path={record.path}>
              <h2>
                {record.path} <StatusBadge status={record.status} />
              </h2>
              <div className="muted small">
                {record.type} · attempts {record.attempts} · {ms(record.durationMs)} {record.next && <>· next {record.next}</>}
              </div>
              <JsonBlock label="Input" value={record.input} />
              <JsonBlock label="Output" value={record.output} />
              {record.error && <JsonBlock label="Error" value={record.error} />}
            </div>
          ) : (
            <div className="record">
              <JsonBlock label="Execution input" value={view.input} open={false} />
              <JsonBlock label={view.error ? 'Execution error' : 'Execution output'} value={view.error ?? view.output} />
              <p className="muted small">Select a step in the timeline or on the graph for its input, output and error.</p>
            </div>
          )}
        </div>
      </div>
      {rerun && wf && <RerunDialog view={view} wf={wf} onClose={() => setRerun(false)} from={selected && !selected.includes('/') && !selected.includes('[') ? selected : undefined} />}
    </section>
  )
}

/**
 * Records in start order. Steps that started in the same millisecond (a condition run inline
 * after its predecessor) are ordered along the path the execution took (`next` of each record).
 */
export function startOrder(steps: StepRecord[]): StepRecord[] {
  const depth = new Map<string, number>()
  const byPath = new Map(steps.map((s) => [s.path, s]))
  const prevOf = new Map<string, string>()
  for (const p of steps) if (p.next && !p.path.includes('/') && !p.path.includes('[')) prevOf.set(p.next, p.path)
  for (const s of steps) {
    let d = 0
    let cur: StepRecord | undefined = s
    const seen = new Set<string>()
    // Count how many records lead here through `next` (bounded by the record count).
    while (cur && !seen.has(cur.path)) {
      seen.add(cur.path)
      const prev = prevOf.get(cur.path)
      if (!prev) break
      d++
      cur = byPath.get(prev)
    }
    depth.set(s.path, d)
  }
  return steps
    .map((s, i) => ({ s, i, t: Date.parse(s.startedAt) }))
    .sort((a, b) => a.t - b.t || (depth.get(a.s.path) ?? 0) - (depth.get(b.s.path) ?? 0) || a.i - b.i)
    .map((x) => x.s)
}

declare global {
  interface Window {
    __wfOpened?: number
  }
}

const ROW = 28

/** The step records in start order, one bar each on the execution's time axis; only the visible rows are rendered. */
function Waterfall({ steps, start, end, selected, onSelect }: { steps: StepRecord[]; start: number; end: number; selected: string | null; onSelect: (p: string) => void }) {
  const ref = useRef<HTMLDivElement>(null)
  const [scroll, setScroll] = useState(0)
  const height = 320
  const total = Math.max(end - start, 1)
  const first = Math.max(0, Math.floor(scroll / ROW) - 5)
  const last = Math.min(steps.length, Math.ceil((scroll + height) / ROW) + 5)
  return (
    <div className="waterfall-wrap">
      <h2 className="small-head">Timeline ({steps.length.toLocaleString()} records, in start order)</h2>
      <div className="waterfall" ref={ref} style={{ height }} onScroll={(e) => setScroll(e.currentTarget.scrollTop)} role="list" aria-label="Step timeline" tabIndex={0} data-testid="waterfall">
        <div style={{ height: steps.length * ROW, position: 'relative' }}>
          {steps.slice(first, last).map((s, k) => {
            const i = first + k
            const s0 = Date.parse(s.startedAt) - start
            const d = s.durationMs ?? (s.finishedAt ? Date.parse(s.finishedAt) - Date.parse(s.startedAt) : end - Date.parse(s.startedAt))
            return (
              <div
                key={s.path}
                role="listitem"
                className={`wf-row ${selected === s.path ? 'sel' : ''}`}
                style={{ top: i * ROW, height: ROW }}
                onClick={() => onSelect(s.path)}
                data-path={s.path}
              >
                <button className="wf-name link" onClick={() => onSelect(s.path)} title={s.path}>
                  {s.path}
                </button>
                <span className="wf-track">
                  <span className={`wf-bar st-${s.status}`} style={{ left: `${(s0 / total) * 100}%`, width: `max(2px, ${(Math.max(d, 0) / total) * 100}%)` }} />
                </span>
                <span className="wf-meta">
                  {ms(d)}
                  {s.attempts > 1 ? ` ×${s.attempts}` : ''}
                </span>
              </div>
            )
          })}
        </div>
      </div>
    </div>
  )
}

function RerunDialog({ view, wf, onClose, from }: { view: ExecutionView; wf: Workflow; onClose: () => void; from?: string }) {
  const tops = wf.steps.map((s) => s.id)
  const [fromStep, setFrom] = useState(from ?? tops[0])
  const [input, setInput] = useState<unknown>(view.input)
  const { busy, error, run } = useAction()
  const submit = async () => {
    const out = await run('Starting the rerun…', () => api<{ executionId: string }>('POST', `/executions/${encodeURIComponent(view.id)}/rerun`, { fromStep, input }))
    if (out) {
      onClose()
      go('x', out.executionId)
    }
  }
  return (
    <Modal title="Rerun from a step" onClose={onClose}>
      <p className="muted small">The steps before it keep their recorded results; it and what follows run again, as a new execution linked to this one.</p>
      <div className="field">
        <label htmlFor="rerun-from">From step (top level)</label>
        <select id="rerun-from" value={fromStep} onChange={(e) => setFrom(e.target.value)}>
          {tops.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </div>
      <JsonField label="Input (JSON)" value={input} onChange={setInput} rows={8} id="rerun-input" />
      <ErrorBox error={error} />
      <div className="row">
        <button className="primary" onClick={submit} disabled={!!busy} data-testid="rerun-confirm">
          Rerun
        </button>
        <button onClick={onClose}>Cancel</button>
        {busy && <Busy label={busy} />}
      </div>
    </Modal>
  )
}
