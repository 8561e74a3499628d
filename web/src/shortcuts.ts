// Keyboard shortcuts: "g" then a letter goes to a page, "/" focuses the
// page's search or filter box, "t" switches the theme, "?" lists them all.
// A page offers its own by giving a button aria-keyshortcuts="KEY": the key
// clicks the visible one (e.g. Explore's ◀ ▶ on "[" and "]").
import { ref } from 'vue'
import type { Router } from 'vue-router'
import { toggleTheme } from './theme'

export const pages: [key: string, path: string, name: string][] = [
  ['o', '/overview', 'Overview'],
  ['e', '/explore', 'Explore'],
  ['r', '/records', 'Records'],
  ['f', '/flow-logs', 'Flow logs'],
  ['w', '/gateways', 'Gateways'],
  ['x', '/exporters', 'Exporters'],
  ['a', '/agents', 'Agents'],
  ['l', '/log-groups', 'Log groups'],
  ['k', '/access-keys', 'Access keys'],
]

export const helpOpen = ref(false)

// typing is true while the user writes in a field: keys are theirs then.
function typing(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null
  return !!t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))
}

function visible(el: HTMLElement): boolean {
  return el.offsetParent !== null && !(el as HTMLButtonElement).disabled
}

// pageKey clicks the visible control that declares key, if any.
function pageKey(key: string): boolean {
  const all = document.querySelectorAll<HTMLElement>('[aria-keyshortcuts]')
  const el = [...all].find((e) => e.getAttribute('aria-keyshortcuts')!.split(' ').includes(key) && visible(e))
  el?.click()
  return !!el
}

function focusSearch(): boolean {
  const el = document.querySelector<HTMLInputElement>('[data-shortcut=search]')
  if (!el || !visible(el)) return false
  el.focus()
  el.select()
  return true
}

// install listens for shortcuts while a session is open (active() true).
export function install(router: Router, active: () => boolean): () => void {
  let pending = false // "g" was pressed: the next key names a page
  let timer = 0
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      helpOpen.value = false
      if (typing(e)) (e.target as HTMLElement).blur()
      return
    }
    if (!active() || typing(e) || e.ctrlKey || e.metaKey || e.altKey) return
    if (pending) {
      pending = false
      clearTimeout(timer)
      const page = pages.find(([k]) => k === e.key)
      if (page) {
        e.preventDefault()
        router.push(page[1])
      }
      return
    }
    let done = true
    switch (e.key) {
      case 'g':
        pending = true
        timer = window.setTimeout(() => (pending = false), 1500)
        break
      case '?':
        helpOpen.value = !helpOpen.value
        break
      case 't':
        toggleTheme()
        break
      case '/':
        done = focusSearch()
        break
      default:
        done = pageKey(e.key)
    }
    if (done) e.preventDefault()
  }
  window.addEventListener('keydown', onKey)
  return () => window.removeEventListener('keydown', onKey)
}
