// Deleting something a list shows: ask first, then say what happened.
import { ElMessage, ElMessageBox } from 'element-plus'
import { i18n } from './i18n'
import { failureText } from './paging'

export interface DeleteTexts {
  question: string
  /** The dialog's title and its confirming button, e.g. "Delete". */
  action: string
  done: string
  /** A message key taking {detail}, the server's reason. */
  failedKey: string
}

/** True once deleted; false when the user said no or the server refused (with a message). */
export async function confirmAndDelete(texts: DeleteTexts, remove: () => Promise<void>): Promise<boolean> {
  const t = i18n.global.t
  try {
    await ElMessageBox.confirm(texts.question, texts.action, {
      type: 'warning',
      confirmButtonText: texts.action,
      cancelButtonText: t('worklist.cancel'),
    })
  } catch {
    return false // the user said no
  }
  try {
    await remove()
    ElMessage.success(texts.done)
    return true
  } catch (failure) {
    ElMessage.error(t(texts.failedKey, { detail: failureText(failure) }))
    return false
  }
}
