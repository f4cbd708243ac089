import { createI18n } from 'vue-i18n'
import { computed } from 'vue'
import elementEn from 'element-plus/es/locale/lang/en'
import elementZhCn from 'element-plus/es/locale/lang/zh-cn'
import en from './locales/en'
import zhCN from './locales/zh-CN'

export const LANGUAGES = [
  { code: 'zh-CN', label: '简体中文' },
  { code: 'en', label: 'English' },
] as const
export type Language = (typeof LANGUAGES)[number]['code']

const STORAGE_KEY = 'openpacs.language'

/** The language chosen before, else the browser's (any Chinese variant: zh-CN), else English. */
export function initialLanguage(): Language {
  const saved = localStorage.getItem(STORAGE_KEY)
  if (saved === 'zh-CN' || saved === 'en') return saved
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language]
  for (const tag of preferred) {
    const lower = tag.toLowerCase()
    if (lower.startsWith('zh')) return 'zh-CN'
    if (lower.startsWith('en')) return 'en'
  }
  return 'en'
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLanguage(),
  fallbackLocale: 'en',
  messages: { en, 'zh-CN': zhCN },
})

export function setLanguage(language: Language): void {
  i18n.global.locale.value = language
  localStorage.setItem(STORAGE_KEY, language)
  document.documentElement.lang = language
}

/** Element Plus's own strings (pagination, date picker) in the console's language. */
export const elementLocale = computed(() =>
  i18n.global.locale.value === 'zh-CN' ? elementZhCn : elementEn,
)
