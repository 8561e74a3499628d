// Dark or light: the user's last choice (not a secret, so localStorage is
// fine), else the system's.
import { ref, watchEffect } from 'vue'

export type Theme = 'light' | 'dark'
const saved = localStorage.getItem('flowlog-theme')
export const theme = ref<Theme>(
  saved === 'light' || saved === 'dark'
    ? saved
    : matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light',
)
watchEffect(() => {
  document.documentElement.dataset.theme = theme.value
})

export function toggleTheme(): void {
  theme.value = theme.value === 'dark' ? 'light' : 'dark'
  localStorage.setItem('flowlog-theme', theme.value)
}
