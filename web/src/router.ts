import { createRouter, createWebHistory } from 'vue-router'
import { restore, session } from './api'
import SignIn from './views/SignIn.vue'
import Overview from './views/Overview.vue'
import Explore from './views/Explore.vue'
import FlowLogs from './views/FlowLogs.vue'
import LogGroups from './views/LogGroups.vue'
import AccessKeys from './views/AccessKeys.vue'
import Gateways from './views/Gateways.vue'
import Records from './views/Records.vue'
import Exporters from './views/Exporters.vue'
import Agents from './views/Agents.vue'

// Client routes; the server answers each with index.html (internal/web).
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/overview' },
    { path: '/sign-in', component: SignIn, meta: { public: true } },
    { path: '/overview', component: Overview },
    { path: '/explore', component: Explore },
    { path: '/records', component: Records },
    { path: '/flow-logs', component: FlowLogs },
    { path: '/gateways', component: Gateways },
    { path: '/exporters', component: Exporters },
    { path: '/agents', component: Agents },
    { path: '/log-groups', component: LogGroups },
    { path: '/access-keys', component: AccessKeys },
    { path: '/:rest(.*)', redirect: '/overview' },
  ],
})

let restored = false
router.beforeEach(async (to) => {
  if (!restored) {
    restored = true
    await restore()
  }
  if (!to.meta.public && !session.value) {
    return { path: '/sign-in', query: to.fullPath === '/overview' ? {} : { next: to.fullPath } }
  }
  return true
})
