import { useEffect, useState } from 'react'

/** Hash routes: #/ (automations), #/w/<id>[/<tab>[/<n>]], #/x/<executionId>. */
export function useRoute(): string[] {
  const get = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent)
  const [route, setRoute] = useState(get)
  useEffect(() => {
    const f = () => setRoute(get())
    window.addEventListener('hashchange', f)
    return () => window.removeEventListener('hashchange', f)
  }, [])
  return route
}

export function go(...parts: (string | number)[]) {
  location.hash = `#/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`
}
