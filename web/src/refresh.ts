// useRefresh loads a page's data when it is shown and every ms after,
// until it goes; a load still running when the next starts is aborted.
import { onMounted, onUnmounted } from 'vue'

export function useRefresh(load: (signal: AbortSignal) => Promise<void>, ms: number): () => Promise<void> {
  let timer: ReturnType<typeof setInterval> | undefined
  let inflight: AbortController | undefined
  const run = () => {
    inflight?.abort()
    inflight = new AbortController()
    return load(inflight.signal)
  }
  onMounted(() => {
    run()
    timer = setInterval(run, ms)
  })
  onUnmounted(() => {
    clearInterval(timer)
    inflight?.abort()
  })
  return run
}
