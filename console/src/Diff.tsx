// A step-level diff as a list: added / removed / changed steps (the colours the canvas uses), config keys.

import { diffIsEmpty, type DiffMark, type StepDiff } from './model'

export function DiffView({ diff, first }: { diff: StepDiff; first?: boolean }) {
  if (first) return <p data-testid="diff">First version: {diff.addedSteps.length} step(s).</p>
  if (diffIsEmpty(diff)) return <p data-testid="diff">No change from the previous version.</p>
  const item = (mark: DiffMark, text: string, extra?: string) => (
    <li key={mark + text} className={`d-${mark}`}>
      <span className={`node-mark m-${mark}`}>{mark}</span> <code>{text}</code> {extra && <span className="muted small">{extra}</span>}
    </li>
  )
  return (
    <ul className="diff" data-testid="diff">
      {diff.addedSteps.map((s) => item('added', s))}
      {diff.removedSteps.map((s) => item('removed', s))}
      {diff.changedSteps.map((c) => item('changed', c.id, c.keys.join(', ')))}
      {diff.changedConfig.length > 0 && <li>config: {diff.changedConfig.join(', ')}</li>}
      {(diff.changedFields ?? []).length > 0 && <li>fields: {diff.changedFields!.join(', ')}</li>}
    </ul>
  )
}

