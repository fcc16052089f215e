// One workflow: the canvas editor of its draft (autosaved), the side panel, publish, test runs,
// the AI chat, and the Configuration / Versions / Executions tabs.

import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { ReactFlowProvider } from '@xyflow/react'
import { actions, api, follow, withAllSteps, type ActionSpec, type ChatReply, type ChatTurn, type StepRecord, type Summary, type Validation, type WorkflowAnswer } from './api'
import { Canvas, type NodeStatus } from './Canvas'
import { ExecutionList, RejectedEvents } from './Executions'
import { go } from './nav'
import { stateLabel, triggerIcons } from './List'
import {
  addStep,
  connect,
  diffIsEmpty,
  diffMarks,
  diffWorkflows,
  findStep,
  newStep,
  problemsByNode,
  recordPathToNode,
  removeStep,
  sampleInput,
  scopeOf,
  STEP_TYPES,
  TYPE_LABEL,
  COLORS,
  updateStep,
  withRemoved,
  type StepDiff,
  type StepType,
  type Workflow,
} from './model'
import { StepPanel } from './StepPanel'
import { DiffView } from './Diff'
import { Busy, ErrorBox, JsonBlock, JsonField, ListTable, Modal, StatusBadge, useAction } from './ui'

export function Editor({ id, tab, arg }: { id: string; tab: string; arg?: string }) {
  const [answer, setAnswer] = useState<WorkflowAnswer | null>(null)
  const [loadError, setLoadError] = useState<unknown>(null)
  const reload = useCallback(async () => {
    try {
      setAnswer(await api<WorkflowAnswer>('GET', `/workflows/${encodeURIComponent(id)}`))
    } catch (e) {
      setLoadError(e)
    }
  }, [id])
  useEffect(() => {
    void reload()
  }, [reload])
  if (loadError) return <section className="page"><ErrorBox error={loadError} /><a href="#/">Back to automations</a></section>
  if (!answer) return <section className="page"><Busy label="Loading the workflow…" /></section>
  return <Loaded key={id} initial={answer} tab={tab} arg={arg} reload={reload} />
}

function Loaded({ initial, tab, arg, reload }: { initial: WorkflowAnswer; tab: string; arg?: string; reload: () => Promise<void> }) {
  const id = initial.workflow.id
  const [summary, setSummary] = useState<Summary>(initial.workflow)
  const [wf, setWf] = useState<Workflow>(() => normalize(initial.draft, id))
  const [saved, setSaved] = useState<{ wf: Workflow; validation: Validation | null }>({ wf: normalize(initial.draft, id), validation: initial.validation })
  const [past, setPast] = useState<Workflow[]>([])
  const [future, setFuture] = useState<Workflow[]>([])
  const [selected, setSelected] = useState<string | null>(null)
  const [saveState, setSaveState] = useState<'saved' | 'pending' | 'saving' | 'error'>('saved')
  const [saveError, setSaveError] = useState<unknown>(null)
  const [notice, setNotice] = useState('')
  const [drawer, setDrawer] = useState<'test' | 'chat' | null>(arg === 'chat' ? 'chat' : null)
  const [adding, setAdding] = useState(false)
  const [publishing, setPublishing] = useState(false)
  const [statuses, setStatuses] = useState<Map<string, NodeStatus> | undefined>()
  const [preview, setPreview] = useState<{ before: Workflow; after: Workflow; diff: StepDiff } | null>(null)
  const readOnly = !!summary.source?.startsWith('file:')
  const timer = useRef<number | undefined>(undefined)
  const latest = useRef(wf)
  latest.current = wf
  const saving = useRef<Promise<void>>(Promise.resolve())

  const save = useCallback(() => {
    const run = async () => {
      const draft = latest.current
      setSaveState('saving')
      try {
        const out = await api<WorkflowAnswer>('PUT', `/workflows/${encodeURIComponent(id)}`, draft)
        setSummary(out.workflow)
        setSaved({ wf: draft, validation: out.validation })
        setSaveError(null)
        setSaveState(latest.current === draft ? 'saved' : 'pending')
      } catch (e) {
        setSaveError(e)
        setSaveState('error')
      }
    }
    saving.current = saving.current.then(run)
    return saving.current
  }, [id])

  const flush = useCallback(async () => {
    window.clearTimeout(timer.current)
    if (latest.current !== saved.wf) await save()
    await saving.current
  }, [save, saved.wf])

  /** Show `next` as the draft and save it after 400 ms without another change. */
  const change = useCallback(
    (next: Workflow) => {
      setWf(next)
      latest.current = next
      setSaveState('pending')
      window.clearTimeout(timer.current)
      timer.current = window.setTimeout(() => void save(), 400)
    },
    [save],
  )
  const edit = useCallback(
    (next: Workflow | null) => {
      if (!next || readOnly) return
      setPast((p) => [...p.slice(-99), latest.current])
      setFuture([])
      change(next)
    },
    [readOnly, change],
  )
  const undo = useCallback(() => {
    if (!past.length) return
    const prev = past[past.length - 1]
    setPast(past.slice(0, -1))
    setFuture((f) => [latest.current, ...f])
    change(prev)
  }, [past, change])
  const redo = useCallback(() => {
    if (!future.length) return
    const next = future[0]
    setFuture(future.slice(1))
    setPast((p) => [...p, latest.current])
    change(next)
  }, [future, change])
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement
      if (t.closest('input, textarea, select')) return
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z') {
        e.preventDefault()
        if (e.shiftKey) redo()
        else undo()
      } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'y') {
        e.preventDefault()
        redo()
      }
    }
    window.addEventListener('keydown', key)
    return () => window.removeEventListener('keydown', key)
  }, [undo, redo])

  const problems = saved.validation?.problems ?? []
  const byNode = useMemo(() => problemsByNode(saved.wf, problems), [saved.wf, problems])
  const topProblems = byNode.get('') ?? []
  const unsaved = saveState !== 'saved'
  const publishBlock = readOnly
    ? `Edited in ${summary.source!.slice(5)}: publish by saving the file (wf dev republishes it).`
    : problems.length
      ? `${problems.length} problem${problems.length > 1 ? 's' : ''} to fix before publishing.`
      : unsaved
        ? 'Saving the draft…'
        : ''

  const start = wf.steps.find((s) => s?.type === 'start')
  const triggers = Array.isArray(start?.triggers) ? (start!.triggers as { type: string }[]).map((t) => t?.type) : []

  const tabs: [string, string][] = [
    ['canvas', 'Canvas'],
    ['config', 'Configuration'],
    ['versions', 'Versions'],
    ['executions', 'Executions'],
  ]
  const canvasWf = preview ? withRemoved(preview.before, preview.after, preview.diff) : wf
  const marks = useMemo(() => (preview ? diffMarks(preview.diff) : undefined), [preview])

  return (
    <section className="editor">
      <div className="editor-head">
        <div>
          <h1>
            {wf.name || id} <span className="muted small">{id}</span>
          </h1>
          <div className="head-meta">
            {stateLabel(summary)} {triggerIcons(triggers)}
            <span className={`save s-${saveState}`} role="status" aria-live="polite">
              {readOnly ? 'read-only' : saveState === 'saved' ? 'Draft saved' : saveState === 'error' ? 'Not saved' : 'Saving…'}
            </span>
          </div>
        </div>
        <div className="head-actions">
          {!readOnly && (
            <>
              <button onClick={() => setDrawer(drawer === 'test' ? null : 'test')} aria-pressed={drawer === 'test'}>
                Test
              </button>
              <button onClick={() => setDrawer(drawer === 'chat' ? null : 'chat')} aria-pressed={drawer === 'chat'}>
                AI chat
              </button>
            </>
          )}
          <ActivateButton summary={summary} setSummary={setSummary} />
          <span className="publish-wrap">
            <button className="primary" disabled={!!publishBlock} onClick={() => setPublishing(true)} aria-describedby="publish-reason" data-testid="publish">
              Publish
            </button>
            {publishBlock && (
              <span id="publish-reason" className="reason" data-testid="publish-reason">
                {publishBlock}
              </span>
            )}
          </span>
        </div>
      </div>
      {readOnly && (
        <div className="banner" role="note" data-testid="file-banner">
          Read-only: this workflow is defined in the file <code>{summary.source!.slice(5)}</code>. Edit the file; <code>wf dev</code> republishes it on save. Its runs are under Executions.
        </div>
      )}
      <ErrorBox error={saveError} />
      {notice && (
        <div className="notice" role="status">
          {notice}{' '}
          <button className="link" onClick={() => setNotice('')}>
            OK
          </button>
        </div>
      )}
      <nav className="tabs" aria-label="Workflow views">
        {tabs.map(([t, label]) => (
          <a key={t} href={`#/w/${encodeURIComponent(id)}/${t}`} className={tab === t ? 'current' : ''} aria-current={tab === t ? 'page' : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {tab === 'canvas' && (
        <div className="work">
          <div className="canvas-col">
            <div className="toolbar" role="toolbar" aria-label="Canvas tools">
              {!readOnly && (
                <>
                  <button onClick={() => setAdding(true)} data-testid="add-step">
                    + Add step
                  </button>
                  <button onClick={undo} disabled={!past.length} title="Undo (Ctrl+Z)">
                    Undo
                  </button>
                  <button onClick={redo} disabled={!future.length} title="Redo (Ctrl+Shift+Z)">
                    Redo
                  </button>
                  <button onClick={() => selected && edit(removeStep(wf, selected))} disabled={!selected}>
                    Delete step
                  </button>
                </>
              )}
              {statuses && (
                <button onClick={() => setStatuses(undefined)} title="Hide the run's statuses">
                  Clear run status
                </button>
              )}
              {problems.length > 0 && (
                <span className="problem-count" data-testid="problem-count">
                  ⚠ {problems.length} problem{problems.length > 1 ? 's' : ''}
                </span>
              )}
            </div>
            {topProblems.length > 0 && (
              <ul className="problems top" aria-label="Workflow problems">
                {topProblems.map((p, i) => (
                  <li key={i}>
                    <code>{p.pointer || '/'}</code> {p.message} {p.hint && <span className="hint">— {p.hint}</span>}
                  </li>
                ))}
              </ul>
            )}
            <ReactFlowProvider>
              <Canvas
                workflow={canvasWf}
                readOnly={readOnly || !!preview}
                problems={byNode}
                statuses={statuses}
                marks={marks}
                selected={selected}
                onSelect={setSelected}
                onMove={(path, x, y) => edit(updateStep(wf, path, (s) => ({ ...s, position: { x, y } })))}
                onConnect={(src, h, tgt) => edit(connect(wf, src, h, tgt))}
                onDisconnect={(src, h) => edit(connect(wf, src, h, null))}
                onDelete={(paths) => {
                  let next = wf
                  for (const p of paths) next = removeStep(next, p)
                  setSelected(null)
                  edit(next)
                }}
                onNotice={setNotice}
              />
            </ReactFlowProvider>
          </div>
          {drawer === 'test' && <TestPanel wf={wf} id={id} flush={flush} onStatuses={setStatuses} onClose={() => setDrawer(null)} problems={problems.length} />}
          {drawer === 'chat' && (
            <ChatPanel
              id={id}
              wf={wf}
              flush={flush}
              onReply={(before, reply) => {
                if (!reply.changed) return
                setPreview({ before, after: normalize(reply.draft, id), diff: reply.diff })
              }}
              preview={preview}
              accept={() => {
                if (!preview) return
                setPast((p) => [...p, preview.before])
                setWf(preview.after)
                latest.current = preview.after
                setSaved({ wf: preview.after, validation: null })
                setPreview(null)
                void save()
              }}
              discard={async () => {
                if (!preview) return
                setPreview(null)
                latest.current = preview.before
                setWf(preview.before)
                await save()
              }}
              onClose={() => setDrawer(null)}
            />
          )}
          {!drawer && selected && findStep(wf, selected) && (
            <StepPanel
              key={selected}
              wf={wf}
              path={selected}
              readOnly={readOnly}
              problems={byNode.get(selected) ?? []}
              summary={summary}
              setSummary={setSummary}
              onChange={(next, newPath) => {
                edit(next)
                if (newPath) setSelected(newPath)
              }}
              onClose={() => setSelected(null)}
            />
          )}
        </div>
      )}
      {tab === 'config' && <ConfigTab id={id} summary={summary} setSummary={setSummary} readOnly={readOnly} onSaved={reload} />}
      {tab === 'versions' && <VersionsTab id={id} summary={summary} setSummary={setSummary} view={arg} />}
      {tab === 'executions' && <ExecutionList workflowId={id} />}
      {tab === 'executions' && triggers.includes('event') && <RejectedEvents workflowId={id} />}
      {adding && (
        <AddStep
          wf={wf}
          selected={selected}
          onClose={() => setAdding(false)}
          onAdd={(next, path) => {
            edit(next)
            setSelected(path)
            setAdding(false)
          }}
        />
      )}
      {publishing && (
        <PublishDialog
          id={id}
          wf={wf}
          summary={summary}
          flush={flush}
          onClose={() => setPublishing(false)}
          onPublished={(s) => setSummary(s)}
        />
      )}
    </section>
  )
}

function normalize(draft: unknown, id: string): Workflow {
  const d = (draft && typeof draft === 'object' ? draft : {}) as Workflow
  return { ...d, id: d.id ?? id, steps: Array.isArray(d.steps) ? d.steps : [] }
}

function ActivateButton({ summary, setSummary }: { summary: Summary; setSummary: (s: Summary) => void }) {
  const { busy, error, setError, run } = useAction()
  if (summary.latestVersion === 0) return null
  const toggle = async () => {
    const out = await run(summary.active ? 'Deactivating…' : 'Activating…', () =>
      api<Summary>('POST', `/workflows/${encodeURIComponent(summary.id)}/${summary.active ? 'deactivate' : 'activate'}`),
    )
    if (out) setSummary({ ...summary, ...out })
  }
  return (
    <>
      <button onClick={toggle} disabled={!!busy} data-testid="activate">
        {summary.active ? 'Deactivate' : `Activate v${summary.latestVersion}`}
      </button>
      {busy && <Busy label={busy} />}
      {!!error && (
        <Modal title="Could not change activation" onClose={() => setError(null)}>
          <ErrorBox error={error} />
        </Modal>
      )}
    </>
  )
}

// ---- Add step

function AddStep({ wf, selected, onClose, onAdd }: { wf: Workflow; selected: string | null; onClose: () => void; onAdd: (wf: Workflow, path: string) => void }) {
  const [catalog, setCatalog] = useState<ActionSpec[] | null>(null)
  const [error, setError] = useState<unknown>(null)
  const [type, setType] = useState<StepType | null>(null)
  useEffect(() => {
    actions().then(setCatalog, setError)
  }, [])
  const sel = selected ? findStep(wf, selected) : null
  const loopScope = sel?.type === 'loop' ? selected! : selected ? scopeOf(selected) : ''
  const [inLoop, setInLoop] = useState(!!loopScope)
  const [link, setLink] = useState(!!sel && sel.type !== 'output' && sel.type !== 'condition' && !sel.next && (sel.type !== 'loop' || !inLoop))
  const hasStart = wf.steps.some((s) => s?.type === 'start')
  const add = (t: StepType, action?: string) => {
    const scope = inLoop ? loopScope : ''
    const step = newStep(wf, t, action)
    let next = addStep(wf, scope, step)
    const path = scope ? `${scope}/${step.id}` : step.id
    if (link && selected && scopeOf(selected) === scope) next = connect(next, selected, 'next', path) ?? next
    onAdd(next, path)
  }
  return (
    <Modal title="Add a step" onClose={onClose} wide>
      {loopScope && (
        <label className="check">
          <input type="checkbox" checked={inLoop} onChange={(e) => setInLoop(e.target.checked)} /> Inside the loop <code>{loopScope}</code>
        </label>
      )}
      {sel && sel.type !== 'output' && sel.type !== 'condition' && (
        <label className="check">
          <input type="checkbox" checked={link} onChange={(e) => setLink(e.target.checked)} /> Link it as <code>{selected}</code>'s next step
        </label>
      )}
      <div className="type-grid" role="list">
        {STEP_TYPES.map((t) => (
          <button
            key={t}
            role="listitem"
            className="type-card"
            style={{ borderColor: COLORS[t] }}
            disabled={t === 'start' && hasStart}
            title={t === 'start' && hasStart ? 'A workflow has exactly one start step' : ''}
            onClick={() => (t === 'action' ? setType('action') : add(t))}
            data-testid={`add-${t}`}
            aria-pressed={type === t}
          >
            <span className="swatch" style={{ background: COLORS[t] }} aria-hidden="true" />
            {TYPE_LABEL[t]}
          </button>
        ))}
      </div>
      {type === 'action' && (
        <div className="catalog">
          <h3>Actions</h3>
          <ErrorBox error={error} />
          {!catalog && !error && <Busy label="Loading the action catalogue…" />}
          <ul>
            {catalog?.map((a) => (
              <li key={a.name}>
                <button className="link" onClick={() => add('action', a.name)} data-testid={`action-${a.name}`}>
                  {a.name}
                </button>{' '}
                <span className="muted small">{a.description}</span>
              </li>
            ))}
          </ul>
        </div>
      )}
    </Modal>
  )
}

// ---- Publish (diff preview against the previous version, then confirm)

function PublishDialog({ id, wf, summary, flush, onClose, onPublished }: { id: string; wf: Workflow; summary: Summary; flush: () => Promise<void>; onClose: () => void; onPublished: (s: Summary) => void }) {
  const [prev, setPrev] = useState<Workflow | null | undefined>(undefined)
  const { busy, error, run } = useAction()
  const [done, setDone] = useState<{ version: number; unchanged?: boolean; diff?: StepDiff } | null>(null)
  useEffect(() => {
    if (summary.latestVersion === 0) setPrev(null)
    else
      api<Workflow>('GET', `/workflows/${encodeURIComponent(id)}/versions/${summary.latestVersion}`).then(setPrev, () => setPrev(null))
  }, [id, summary.latestVersion])
  const diff = prev === undefined ? null : diffWorkflows(prev, wf)
  const publish = async () => {
    const out = await run('Publishing…', async () => {
      await flush()
      return api<{ version: number; unchanged?: boolean; diff?: StepDiff; workflow: Summary }>('POST', `/workflows/${encodeURIComponent(id)}/publish`)
    })
    if (out) {
      setDone(out)
      onPublished(out.workflow)
    }
  }
  return (
    <Modal title={done ? `Published version ${done.version}` : `Publish version ${summary.latestVersion + 1}?`} onClose={onClose} wide>
      {!done && (
        <>
          <p className="muted">Publishing makes the draft an immutable version. {summary.active ? `Triggers keep starting v${summary.activeVersion} until you activate the new one.` : 'Activate it to let its triggers start it.'}</p>
          {!diff && <Busy label="Comparing with the previous version…" />}
          {diff && <DiffView diff={diff} first={prev === null} />}
          {diff && prev !== null && !diffIsEmpty(diff) && (
            <div className="preview-canvas">
              <ReactFlowProvider>
                <Canvas workflow={withRemoved(prev ?? null, wf, diff)} readOnly marks={diffMarks(diff)} label="Changes since the previous version" />
              </ReactFlowProvider>
            </div>
          )}
        </>
      )}
      {done && (done.unchanged ? <p>The draft equals version {done.version}: nothing new was published.</p> : <DiffView diff={done.diff ?? diff!} first={done.version === 1} />)}
      <ErrorBox error={error} />
      <div className="row">
        {!done && (
          <button className="primary" onClick={publish} disabled={!!busy || !diff} data-testid="confirm-publish">
            Publish
          </button>
        )}
        <button onClick={onClose}>{done ? 'Close' : 'Cancel'}</button>
        {busy && <Busy label={busy} />}
      </div>
    </Modal>
  )
}

// ---- Test panel

export function nodeStatuses(steps: StepRecord[]): Map<string, NodeStatus> {
  const out = new Map<string, NodeStatus>()
  for (const s of steps) applyStep(out, s)
  return out
}

const RANK: Record<string, number> = { failed: 4, running: 3, succeeded: 1, skipped: 0 }
function applyStep(map: Map<string, NodeStatus>, s: StepRecord, replace?: StepRecord) {
  const node = recordPathToNode(s.path)
  const cur = map.get(node)
  if (!cur || s.path === node) {
    map.set(node, { status: s.status, attempts: s.attempts, count: cur && s.path !== node ? cur.count + 1 : 1 })
    return
  }
  void replace
  const status = (RANK[s.status] ?? 2) >= (RANK[cur.status] ?? 2) ? s.status : cur.status
  map.set(node, { status, attempts: Math.max(cur.attempts, s.attempts), count: cur.count + 1 })
}

declare global {
  interface Window {
    __wfLive?: { path: string; status: string; at: number; finishedAt?: string | null; startedAt?: string }[]
  }
}

function TestPanel({ wf, id, flush, onStatuses, onClose, problems }: { wf: Workflow; id: string; flush: () => Promise<void>; onStatuses: (m: Map<string, NodeStatus>) => void; onClose: () => void; problems: number }) {
  const start = wf.steps.find((s) => s?.type === 'start')
  const [input, setInput] = useState<unknown>(() => sampleInput(start?.inputSchema))
  const { busy, error, run } = useAction()
  const [exec, setExec] = useState<{ id: string; status: string; output?: unknown; mode?: string } | null>(null)
  const stop = useRef<(() => void) | null>(null)
  useEffect(() => () => stop.current?.(), [])
  const execute = async () => {
    stop.current?.()
    const out = await run('Starting the test run…', async () => {
      await flush()
      return api<{ executionId: string }>('POST', `/workflows/${encodeURIComponent(id)}/executions?draft=true`, { input })
    })
    if (!out) return
    const eid = out.executionId
    setExec({ id: eid, status: 'queued' })
    const records = new Map<string, StepRecord>()
    window.__wfLive = []
    const publishStatuses = () => onStatuses(nodeStatuses([...records.values()]))
    stop.current = follow(eid, {
      mode: (m) => setExec((e) => (e ? { ...e, mode: m } : e)),
      execution: (x) => setExec((e) => (e ? { ...e, status: x.status } : e)),
      step: (s) => {
        records.set(s.path, s)
        publishStatuses()
        window.__wfLive?.push({ path: s.path, status: s.status, at: Date.now(), finishedAt: s.finishedAt, startedAt: s.startedAt })
      },
      end: (first) =>
        void withAllSteps(first).then((v) => {
          for (const s of v.steps) records.set(s.path, s)
          publishStatuses()
          setExec((e) => ({ ...e, id: eid, status: v.status, output: v.error ?? v.output }))
        }),
    })
  }
  return (
    <aside className="panel" aria-label="Test panel">
      <div className="panel-head">
        <h2>Test the draft</h2>
        <button className="link" onClick={onClose}>
          Close
        </button>
      </div>
      <p className="muted small">Runs the current draft (a test run; published versions are not involved). Input prefilled from the input schema's required fields.</p>
      <JsonField label="Input (JSON)" value={input} onChange={setInput} id="test-input" rows={8} />
      <div className="row">
        <button className="primary" onClick={execute} disabled={!!busy || problems > 0} data-testid="execute">
          Execute
        </button>
        {problems > 0 && <span className="reason">Fix the {problems} problem(s) first.</span>}
        {busy && <Busy label={busy} />}
      </div>
      <ErrorBox error={error} />
      {exec && (
        <div className="test-result" data-testid="test-result" data-status={exec.status}>
          <p>
            <StatusBadge status={exec.status} /> <a href={`#/x/${encodeURIComponent(exec.id)}`}>Open execution {exec.id.slice(-8)}</a>{' '}
            {exec.mode && <span className="muted small">({exec.mode === 'sse' ? 'live stream' : 'polling'})</span>}
          </p>
          {exec.output !== undefined && <JsonBlock label={exec.status === 'succeeded' ? 'Output' : 'Result'} value={exec.output} />}
        </div>
      )}
    </aside>
  )
}

// ---- AI chat

function ChatPanel({
  id,
  wf,
  flush,
  onReply,
  preview,
  accept,
  discard,
  onClose,
}: {
  id: string
  wf: Workflow
  flush: () => Promise<void>
  onReply: (before: Workflow, r: ChatReply) => void
  preview: { diff: StepDiff } | null
  accept: () => void
  discard: () => Promise<void>
  onClose: () => void
}) {
  const [turns, setTurns] = useState<ChatTurn[] | null>(null)
  const [message, setMessage] = useState('')
  const { busy, error, run } = useAction()
  const load = useCallback(() => api<{ turns: ChatTurn[] }>('GET', `/workflows/${encodeURIComponent(id)}/chat`).then((r) => setTurns(r.turns), () => setTurns([])), [id])
  useEffect(() => {
    void load()
  }, [load])
  const send = async () => {
    const before = wf
    const reply = await run('The AI is changing the draft…', async () => {
      await flush()
      return api<ChatReply>('POST', `/workflows/${encodeURIComponent(id)}/chat`, { message })
    })
    if (reply) {
      setMessage('')
      onReply(before, reply)
      void load()
    }
  }
  return (
    <aside className="panel chat" aria-label="AI chat">
      <div className="panel-head">
        <h2>AI chat</h2>
        <button className="link" onClick={onClose}>
          Close
        </button>
      </div>
      <p className="muted small">The AI edits this draft only. Published versions are never touched: publish yourself when the draft is right.</p>
      <ol className="turns" data-testid="chat-turns">
        {turns?.map((t, i) => (
          <li key={i}>
            <div className="you">{t.message}</div>
            <div className="ai">
              {t.explanation} {t.applied ? <span className="badge active">applied</span> : <span className="badge none">not applied{t.problems ? ` (${t.problems} problems)` : ''}</span>}
            </div>
          </li>
        ))}
      </ol>
      {preview && (
        <div className="chat-diff" data-testid="chat-diff">
          <h3>Proposed change (shown on the canvas)</h3>
          <DiffView diff={preview.diff} />
          <div className="row">
            <button className="primary" onClick={accept} data-testid="chat-accept">
              Accept
            </button>
            <button onClick={() => void discard()} data-testid="chat-discard">
              Discard
            </button>
          </div>
        </div>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault()
          if (message.trim()) void send()
        }}
      >
        <div className="field">
          <label htmlFor="chat-msg">Ask for a change</label>
          <textarea id="chat-msg" rows={3} value={message} onChange={(e) => setMessage(e.target.value)} placeholder="Only alert for orders over 500" />
        </div>
        <div className="row">
          <button type="submit" className="primary" disabled={!message.trim() || !!busy || !!preview}>
            Send
          </button>
          <button type="button" onClick={() => api('DELETE', `/workflows/${encodeURIComponent(id)}/chat`).then(load)}>
            Forget conversation
          </button>
          {busy && <Busy label={busy} />}
        </div>
      </form>
      <ErrorBox error={error} />
    </aside>
  )
}

// ---- Configuration

const DEFAULTS: Record<string, number> = { timeoutMs: 300000, maxRetries: 3, backoffMs: 1000 }

function ConfigTab({ id, summary, setSummary, readOnly, onSaved }: { id: string; summary: Summary; setSummary: (s: Summary) => void; readOnly: boolean; onSaved: () => Promise<void> }) {
  const [config, setConfig] = useState<Record<string, unknown> | null>(null)
  const [changes, setChanges] = useState<Record<string, unknown>>({})
  const { busy, error, run } = useAction()
  const [msg, setMsg] = useState('')
  useEffect(() => {
    void run('Loading…', async () => setConfig(await api<Record<string, unknown>>('GET', `/workflows/${encodeURIComponent(id)}/config`)))
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id])
  if (!config) return <div className="page">{busy && <Busy label={busy} />}<ErrorBox error={error} /></div>
  const value = (k: string) => (k in changes ? changes[k] : config[k])
  const setNum = (k: string, v: string) => setChanges({ ...changes, [k]: v === '' ? null : Number(v) })
  const neverPublished = summary.latestVersion === 0
  const saveAll = async () => {
    const out = await run('Saving the configuration…', () => api<{ config: Record<string, unknown> }>('PATCH', `/workflows/${encodeURIComponent(id)}/config`, changes))
    if (out) {
      setConfig(out.config)
      setChanges({})
      setMsg('Saved in the draft: it applies when you publish.')
      await onSaved()
    }
  }
  const toggleActive = async (active: boolean) => {
    const out = await run(active ? 'Activating…' : 'Deactivating…', () => api<{ config: Record<string, unknown> }>('PATCH', `/workflows/${encodeURIComponent(id)}/config`, { active }))
    if (out) {
      setConfig(out.config)
      setSummary({ ...summary, active })
      setMsg(active ? 'Active: its triggers start it now.' : 'Inactive: triggers no longer start it.')
    }
  }
  const num = (k: string, label: string, def?: number) => (
    <div className="field" key={k}>
      <label htmlFor={`cfg-${k}`}>{label}</label>
      <input id={`cfg-${k}`} type="number" value={value(k) === undefined || value(k) === null ? '' : String(value(k))} placeholder={def !== undefined ? `default ${def}` : 'not set'} onChange={(e) => setNum(k, e.target.value)} disabled={readOnly} />
      {def !== undefined && <div className="muted small">Default {def.toLocaleString()}{value(k) === undefined || value(k) === null ? ' (in use)' : ''}</div>}
    </div>
  )
  return (
    <div className="page config" data-testid="config">
      <div className="field">
        <label className="check">
          <input type="checkbox" checked={!!summary.active} disabled={neverPublished || readOnly || !!busy} onChange={(e) => toggleActive(e.target.checked)} aria-describedby="active-reason" /> Active
        </label>
        <div id="active-reason" className="muted small">
          {neverPublished ? 'Publish it first: a never-published workflow cannot be activated.' : readOnly ? 'Set config.active in the file.' : 'Takes effect at once (no publish needed).'}
        </div>
      </div>
      {num('timeoutMs', 'Execution timeout (ms)', DEFAULTS.timeoutMs)}
      {num('maxRetries', 'Max retries (action and LLM steps)', DEFAULTS.maxRetries)}
      {num('backoffMs', 'Backoff before a retry (ms)', DEFAULTS.backoffMs)}
      {num('backoffMultiplier', 'Backoff multiplier (exponential when > 1)')}
      {num('maxBackoffMs', 'Max backoff (ms)')}
      <JsonField label="Variables (a JSON object, visible as vars)" value={value('variables') ?? {}} objectOnly onChange={(v) => setChanges({ ...changes, variables: v ?? {} })} disabled={readOnly} id="cfg-variables" />
      <div className="row">
        <button className="primary" onClick={saveAll} disabled={readOnly || !Object.keys(changes).length || !!busy}>
          Save configuration
        </button>
        {busy && <Busy label={busy} />}
        {msg && <span role="status">{msg}</span>}
      </div>
      <ErrorBox error={error} />
    </div>
  )
}

// ---- Versions

function VersionsTab({ id, summary, setSummary, view }: { id: string; summary: Summary; setSummary: (s: Summary) => void; view?: string }) {
  const [versions, setVersions] = useState<{ version: number; active: boolean }[] | null>(null)
  const [shown, setShown] = useState<Workflow | null>(null)
  const { busy, error, run } = useAction()
  const load = useCallback(() => run('Loading versions…', async () => setVersions((await api<{ versions: { version: number; active: boolean }[] }>('GET', `/workflows/${encodeURIComponent(id)}/versions`)).versions)), [id]) // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    void load()
  }, [load, summary.activeVersion, summary.active])
  useEffect(() => {
    setShown(null)
    if (view) void run('Loading the version…', async () => setShown(await api<Workflow>('GET', `/workflows/${encodeURIComponent(id)}/versions/${view}`)))
  }, [id, view]) // eslint-disable-line react-hooks/exhaustive-deps
  const activate = async (n: number) => {
    const out = await run(`Activating v${n}…`, () => api<Summary>('POST', `/workflows/${encodeURIComponent(id)}/activate`, { version: n }))
    if (out) setSummary({ ...summary, ...out })
  }
  return (
    <div className="page versions">
      {busy && <Busy label={busy} />}
      <ErrorBox error={error} />
      <ListTable
        rows={versions && [...versions].reverse()}
        testId="versions"
        columns={['Version', 'State', 'Actions']}
        empty="Never published."
        row={(v) => (
          <tr key={v.version}>
            <td>
              <a href={`#/w/${encodeURIComponent(id)}/versions/${v.version}`}>v{v.version}</a>
            </td>
            <td>{v.active ? <span className="badge active">active</span> : <span className="muted">—</span>}</td>
            <td>
              {!v.active && (
                <button onClick={() => activate(v.version)} disabled={!!busy}>
                  Activate v{v.version}
                </button>
              )}
            </td>
          </tr>
        )}
      />
      {shown && (
        <div className="version-view">
          <h2>
            Version {view} (read-only) <button className="link" onClick={() => go('w', id, 'versions')}>close</button>
          </h2>
          <div className="preview-canvas">
            <ReactFlowProvider>
              <Canvas workflow={shown} readOnly label={`Version ${view}`} />
            </ReactFlowProvider>
          </div>
        </div>
      )}
    </div>
  )
}

