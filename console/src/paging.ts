// A server-paged list (the worklist, print jobs): one page of items, the total, loading and
// the error to show; `load` asks `fetch` for the current page.
import { reactive, ref, type Ref } from 'vue'
import { ApiError } from './api/client'
import { i18n } from './i18n'

export interface Paged<T> {
  total: number
  items: T[]
}

export interface PagedList<T> {
  items: Ref<T[]>
  total: Ref<number>
  loading: Ref<boolean>
  error: Ref<string>
  page: { offset: number; limit: number }
  load: () => Promise<void>
  /** Back to the first page, then load (after the filters changed). */
  search: () => void
  onPage: (number: number) => void
  onPageSize: (size: number) => void
}

/** The server's word for a failure, or that it did not answer. */
export function failureText(failure: unknown): string {
  return failure instanceof ApiError ? failure.detail : i18n.global.t('errors.network')
}

export function usePagedList<T>(fetch: (page: { offset: number; limit: number }) => Promise<Paged<T>>): PagedList<T> {
  const items = ref<T[]>([]) as Ref<T[]>
  const total = ref(0)
  const loading = ref(false)
  const error = ref('')
  const page = reactive({ offset: 0, limit: 25 })

  async function load(): Promise<void> {
    loading.value = true
    error.value = ''
    try {
      const found = await fetch({ offset: page.offset, limit: page.limit })
      items.value = found.items
      total.value = found.total
    } catch (failure) {
      items.value = []
      total.value = 0
      error.value = i18n.global.t('errors.loadFailed', { detail: failureText(failure) })
    } finally {
      loading.value = false
    }
  }

  function search(): void {
    page.offset = 0
    void load()
  }

  return {
    items,
    total,
    loading,
    error,
    page,
    load,
    search,
    onPage: (number) => {
      page.offset = (number - 1) * page.limit
      void load()
    },
    onPageSize: (size) => {
      page.limit = size
      search()
    },
  }
}
