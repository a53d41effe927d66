; ModuleID = "golden"
target triple = "unknown-unknown-unknown"
target datalayout = ""

define void @"add_f32"(ptr %"buffers", i64 %"start", i64 %"stop")
{
entry:
  %".5" = getelementptr inbounds ptr, ptr %"buffers", i64 0
  %".6" = load ptr, ptr %".5"
  %".7" = getelementptr inbounds ptr, ptr %"buffers", i64 1
  %".8" = load ptr, ptr %".7"
  %".9" = getelementptr inbounds ptr, ptr %"buffers", i64 2
  %".10" = load ptr, ptr %".9"
  br label %"row.header"
row.header:
  %"row" = phi  i64 [%"start", %"entry"], [%"row.next", %"row.body"]
  %".12" = icmp slt i64 %"row", %"stop"
  br i1 %".12", label %"row.body", label %"row.end"
row.body:
  %".14" = getelementptr inbounds float, ptr %".8", i64 %"row"
  %".15" = load float, ptr %".14"
  %".16" = getelementptr inbounds float, ptr %".10", i64 %"row"
  %".17" = load float, ptr %".16"
  %".18" = fadd float %".15", %".17"
  %".19" = getelementptr inbounds float, ptr %".6", i64 %"row"
  store float %".18", ptr %".19"
  %"row.next" = add nsw nuw i64 %"row", 1
  br label %"row.header"
row.end:
  ret void
}
