// The canvas: the workflow as a React Flow graph. Nodes in the product's colours, loop bodies
// nested in their loop, edges for next / each branch / else / onError (dashed red). Drag to
// move (saved in the step's `position`), connect handles to link, Delete to remove.

import { memo, useCallback, useEffect, useMemo, useState } from 'react'
import {
  applyNodeChanges,
  Background,
  Controls,
  Handle as RFHandle,
  MarkerType,
  Position as RFPosition,
  ReactFlow,
  type Connection,
  type Edge,
  type Node,
  type NodeChange,
  type NodeProps,
  type ReactFlowInstance,
} from '@xyflow/react'
import { COLORS, TYPE_LABEL, toGraph, type DiffMark, type GraphNode, type Handle, type Problem, type Step, type Workflow, scopeOf } from './model'

export interface NodeStatus {
  status: string
  attempts: number
  /** Records for this node (loop-body steps run once per iteration). */
  count: number
}

interface NodeData extends Record<string, unknown> {
  path: string
  step: Step
  problems: Problem[]
  status?: NodeStatus
  mark?: DiffMark
  width: number
  height: number
}

function summaryOf(step: Step): string {
  switch (step.type) {
    case 'start': {
      const t = Array.isArray(step.triggers) ? (step.triggers as { type?: string }[]).map((x) => x?.type).join(', ') : ''
      return t ? `triggers: ${t}` : 'no trigger'
    }
    case 'action':
      return String(step.action ?? '')
    case 'llm':
      return String(step.model ?? '')
    case 'condition':
      return `${Array.isArray(step.branches) ? step.branches.length : 0} branch(es) + else`
    case 'loop':
      return `over ${String(step.items ?? '')}`
    case 'output':
      return 'output'
  }
  return ''
}

function handlesOf(step: Step): { id: Handle; label: string }[] {
  switch (step.type) {
    case 'output':
      return []
    case 'condition':
      return [...(Array.isArray(step.branches) ? step.branches : []).map((_, i) => ({ id: `b${i}` as Handle, label: `if ${i + 1}` })), { id: 'else', label: 'else' }]
    case 'start':
      return [{ id: 'next', label: 'next' }]
    default:
      return [
        { id: 'next', label: 'next' },
        { id: 'onError', label: 'on error' },
      ]
  }
}

function StepBody({ data, loop }: { data: NodeData; loop?: boolean }) {
  const { step, problems, status, mark } = data
  const color = COLORS[step.type] ?? '#334155'
  const handles = handlesOf(step)
  return (
    <>
      {step.type !== 'start' && <RFHandle type="target" position={RFPosition.Top} id="in" className="h-in" />}
      <div className="node-head" style={{ background: color }}>
        <span className="node-type">{TYPE_LABEL[step.type] ?? String(step.type)}</span>
        {status && (
          <span className={`node-status st-${status.status}`} data-testid="node-status">
            {status.status.replace('_', ' ')}
            {status.attempts > 1 ? ` ×${status.attempts}` : ''}
            {status.count > 1 ? ` (${status.count})` : ''}
          </span>
        )}
      </div>
      <div className="node-main">
        <div className="node-id">{String(step.name || step.id)}</div>
        {!loop || true ? <div className="node-sum">{summaryOf(step)}</div> : null}
        {problems.length > 0 && (
          <div className="node-problem" title={problems.map((p) => `${p.pointer}: ${p.message}${p.hint ? ` — ${p.hint}` : ''}`).join('\n')}>
            ⚠ {problems.length} problem{problems.length > 1 ? 's' : ''}: {problems[0].message}
          </div>
        )}
        {mark && <div className={`node-mark m-${mark}`}>{mark}</div>}
      </div>
      {handles.map((h, i) => (
        <RFHandle
          key={h.id}
          type="source"
          id={h.id}
          position={h.id === 'onError' ? RFPosition.Right : RFPosition.Bottom}
          className={`h-out h-${h.id === 'onError' ? 'error' : h.id === 'else' ? 'else' : 'next'}`}
          style={h.id === 'onError' ? { top: 40 } : { left: `${((i + 1) / (handles.filter((x) => x.id !== 'onError').length + 1)) * 100}%` }}
          title={h.label}
        />
      ))}
    </>
  )
}

const StepNode = memo(function StepNode({ data, selected }: NodeProps<Node<NodeData>>) {
  return (
    <div
      className={`node t-${data.step.type} ${data.status ? `st-${data.status.status}` : ''} ${data.mark ? `diff-${data.mark}` : ''} ${data.problems.length ? 'has-problem' : ''} ${selected ? 'selected' : ''}`}
      data-testid={`node-${data.path}`}
      data-status={data.status?.status ?? ''}
      data-mark={data.mark ?? ''}
      data-problems={data.problems.length}
      style={{ borderColor: COLORS[data.step.type] }}
    >
      <StepBody data={data} />
    </div>
  )
})

const LoopNode = memo(function LoopNode({ data, selected }: NodeProps<Node<NodeData>>) {
  return (
    <div
      className={`node loop t-loop ${data.status ? `st-${data.status.status}` : ''} ${data.mark ? `diff-${data.mark}` : ''} ${data.problems.length ? 'has-problem' : ''} ${selected ? 'selected' : ''}`}
      data-testid={`node-${data.path}`}
      data-status={data.status?.status ?? ''}
      data-mark={data.mark ?? ''}
      data-problems={data.problems.length}
      style={{ width: data.width, height: data.height, borderColor: COLORS.loop }}
    >
      <StepBody data={data} loop />
    </div>
  )
})

const nodeTypes = { step: StepNode, loop: LoopNode }

export interface CanvasProps {
  workflow: Workflow
  readOnly?: boolean
  problems?: Map<string, Problem[]>
  statuses?: Map<string, NodeStatus>
  marks?: Map<string, DiffMark>
  selected?: string | null
  onSelect?: (path: string | null) => void
  onMove?: (path: string, x: number, y: number) => void
  onConnect?: (source: string, handle: Handle, target: string) => void
  onDisconnect?: (source: string, handle: Handle) => void
  onDelete?: (paths: string[]) => void
  onNotice?: (text: string) => void
  label?: string
}

export function Canvas(props: CanvasProps) {
  const { workflow, readOnly, problems, statuses, marks, selected } = props
  const graph = useMemo(() => toGraph(workflow, { readOnly }), [workflow, readOnly])
  const build = useCallback(
    (g: { nodes: GraphNode[] }): Node<NodeData>[] =>
      g.nodes.map((n) => ({
        id: n.id,
        type: n.type,
        position: n.position,
        parentId: n.parentId,
        extent: n.extent,
        draggable: !readOnly,
        selected: n.id === selected,
        style: n.style,
        data: {
          path: n.data.path,
          step: n.data.step,
          width: n.data.width,
          height: n.data.height,
          problems: problems?.get(n.id) ?? [],
          status: statuses?.get(n.id),
          mark: marks?.get(n.data.step.id),
        },
      })),
    [readOnly, problems, statuses, marks, selected],
  )
  const [nodes, setNodes] = useState<Node<NodeData>[]>(() => build(graph))
  useEffect(() => setNodes(build(graph)), [graph, build])
  const edges: Edge[] = useMemo(
    () =>
      graph.edges.map((e) => ({
        id: e.id,
        source: e.source,
        target: e.target,
        sourceHandle: e.sourceHandle,
        targetHandle: 'in',
        label: e.label,
        className: e.className,
        style: e.style,
        deletable: !readOnly,
        markerEnd: { type: MarkerType.ArrowClosed, color: e.sourceHandle === 'onError' ? '#b91c1c' : '#475569' },
        ariaLabel: `${e.source} ${e.sourceHandle} to ${e.target}`,
      })),
    [graph, readOnly],
  )
  const [rf, setRf] = useState<ReactFlowInstance<Node<NodeData>, Edge> | null>(null)
  // Fit when a different workflow (or the first one) is shown.
  useEffect(() => {
    if (rf) requestAnimationFrame(() => rf.fitView({ padding: 0.2, maxZoom: 1.1 }))
  }, [rf, workflow.id])
  const onNodesChange = useCallback((changes: NodeChange<Node<NodeData>>[]) => {
    setNodes((ns) => applyNodeChanges(changes.filter((c) => c.type !== 'remove'), ns))
  }, [])
  return (
    <div className="canvas" aria-label={props.label ?? 'Workflow canvas'} role="region" data-testid="canvas">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onInit={setRf}
        onNodesChange={onNodesChange}
        nodesConnectable={!readOnly}
        nodesDraggable={!readOnly}
        elementsSelectable
        deleteKeyCode={readOnly ? null : ['Delete', 'Backspace']}
        onNodeClick={(_, n) => props.onSelect?.(n.id)}
        onPaneClick={() => props.onSelect?.(null)}
        onNodeDragStop={(_, n) => props.onMove?.(n.id, Math.round(n.position.x), Math.round(n.position.y))}
        isValidConnection={(c) => scopeOf(c.source) === scopeOf(c.target) && c.source !== c.target}
        onConnect={(c: Connection) => {
          if (scopeOf(c.source) !== scopeOf(c.target)) {
            props.onNotice?.('Edges link steps of the same scope (top level, or the same loop body).')
            return
          }
          props.onConnect?.(c.source, (c.sourceHandle ?? 'next') as Handle, c.target)
        }}
        onEdgesDelete={(es) => es.forEach((e) => props.onDisconnect?.(e.source, (e.sourceHandle ?? 'next') as Handle))}
        onNodesDelete={(ns) => props.onDelete?.(ns.map((n) => n.id))}
        minZoom={0.1}
        maxZoom={2}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={20} />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  )
}
