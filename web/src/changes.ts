import { ref } from 'vue'
import { errorText } from './api'

// useChanges is a management page's change state. change runs one call,
// then shows the server's state (load); a failure stays on screen, next
// to what was tried.
export function useChanges(load: () => Promise<void>) {
  const busy = ref(false)
  const error = ref('')
  const confirming = ref('') // the row whose delete awaits confirmation
  async function change(act: () => Promise<unknown>): Promise<boolean> {
    busy.value = true
    try {
      await act()
      confirming.value = ''
      await load()
      return true
    } catch (e) {
      error.value = errorText(e)
      return false
    } finally {
      busy.value = false
    }
  }
  return { busy, error, confirming, change }
}
