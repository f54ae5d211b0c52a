; LLVM 22 (llvmlite 0.50) loop-vectorizer miscompile, found through workbench's max_pool2d.
;
; Program: max_pool2d of the te operator corpus (x: 1x2x7x7, kernel 3, stride 2, padding 1) after
;   reorder(xx, nn, cc, rh, rw, yy); fuse(rh, rw); fuse(rh_rw_fused, yy)
; so the innermost loop f in [0, 36) does  out[cc*16 + (f % 4)*4 + xx] = max(out[...], pad[...])
; with the -inf init when f < 4. Iterations f and f + 4 update the same element.
;
; The IR below is what workbench generates (raw, before optimisation). It has no undefined behaviour:
; index arithmetic carries no nsw/nuw, every inbounds GEP stays inside its buffer (the negative x
; offsets of the padding are only computed under their guard), max is fcmp ogt + select, and every
; output element is initialised before it is read.
;
; Compiled for x86-64 (-mcpu=znver3, haswell or znver4) with the new pass manager at speed level 1
; or 2, LoopVectorize widens the f loop by 8 and loads/stores `out` as a stride-4 interleaved group
; (`load <32 x float>` + shufflevector <0,4,8,...,28>), i.e. as if the index were f*4 rather than
; (f % 4)*4: lanes f and f+4 alias and the result is wrong (some outputs stay -inf). Speed level 0,
; or speed level 1/2 with loop_vectorization=False, gives the numpy result.
;
; Entry ABI: i32 @max_pool2d(ptr bufs, ptr scalars, ptr err); bufs[0] = x (98 floats),
; bufs[1] = out (32 floats). tests/backend/test_maxpool_miscompile.py runs it.
; ModuleID = "workbench"
target triple = "unknown-unknown-unknown"
target datalayout = ""

@"__wb_launch" = global ptr null
define i32 @"max_pool2d"(ptr noalias %".1", ptr noalias %".2", ptr noalias %".3")
{
entry:
  %".9" = alloca [162 x float], align 64
  br label %"start"
start:
  %".5" = getelementptr ptr, ptr %".1", i64 0
  %".6" = load ptr, ptr %".5"
  %".7" = getelementptr ptr, ptr %".1", i64 1
  %".8" = load ptr, ptr %".7"
  br label %"for.head"
for.head:
  %"i0" = phi  i32 [0, %"start"], [%".58", %"for.end.1"]
  %".11" = icmp slt i32 %"i0", 1
  br i1 %".11", label %"for.body", label %"for.end"
for.body:
  br label %"for.head.1"
for.end:
  br label %"for.head.4"
for.head.1:
  %"i1" = phi  i32 [0, %"for.body"], [%".56", %"for.end.2"]
  %".14" = icmp slt i32 %"i1", 2
  br i1 %".14", label %"for.body.1", label %"for.end.1"
for.body.1:
  br label %"for.head.2"
for.end.1:
  %".58" = add nsw i32 %"i0", 1
  br label %"for.head"
for.head.2:
  %"i2" = phi  i32 [0, %"for.body.1"], [%".54", %"for.end.3"]
  %".17" = icmp slt i32 %"i2", 9
  br i1 %".17", label %"for.body.2", label %"for.end.2"
for.body.2:
  br label %"for.head.3"
for.end.2:
  %".56" = add nsw i32 %"i1", 1
  br label %"for.head.1"
for.head.3:
  %"i3" = phi  i32 [0, %"for.body.2"], [%".52", %"ite.end"]
  %".20" = icmp slt i32 %"i3", 9
  br i1 %".20", label %"for.body.3", label %"for.end.3"
for.body.3:
  %".22" = icmp sge i32 %"i2", 1
  %".23" = icmp slt i32 %"i2", 8
  %".24" = and i1 %".22", %".23"
  %".25" = icmp sge i32 %"i3", 1
  %".26" = and i1 %".24", %".25"
  %".27" = icmp slt i32 %"i3", 8
  %".28" = and i1 %".26", %".27"
  br i1 %".28", label %"ite.then", label %"ite.else"
for.end.3:
  %".54" = add nsw i32 %"i2", 1
  br label %"for.head.2"
ite.then:
  %".30" = mul i32 %"i0", 98
  %".31" = mul i32 %"i1", 49
  %".32" = add i32 %".30", %".31"
  %".33" = mul i32 %"i2", 7
  %".34" = add i32 %".32", %".33"
  %".35" = add i32 %".34", %"i3"
  %".36" = sub i32 %".35", 8
  %".37" = sext i32 %".36" to i64
  %".38" = getelementptr inbounds float, ptr %".6", i64 %".37"
  %".39" = load float, ptr %".38", align 4
  br label %"ite.end"
ite.else:
  br label %"ite.end"
ite.end:
  %".42" = phi  float [%".39", %"ite.then"], [0xfff0000000000000, %"ite.else"]
  %".43" = mul i32 %"i0", 162
  %".44" = mul i32 %"i1", 81
  %".45" = add i32 %".43", %".44"
  %".46" = mul i32 %"i2", 9
  %".47" = add i32 %".45", %".46"
  %".48" = add i32 %".47", %"i3"
  %".49" = sext i32 %".48" to i64
  %".50" = getelementptr inbounds float, ptr %".9", i64 %".49"
  store float %".42", ptr %".50", align 4
  %".52" = add nsw i32 %"i3", 1
  br label %"for.head.3"
for.head.4:
  %"xx" = phi  i32 [0, %"for.end"], [%".199", %"for.end.5"]
  %".61" = icmp slt i32 %"xx", 4
  br i1 %".61", label %"for.body.4", label %"for.end.4"
for.body.4:
  br label %"for.head.5"
for.end.4:
  ret i32 0
for.head.5:
  %"nn" = phi  i32 [0, %"for.body.4"], [%".197", %"for.end.6"]
  %".64" = icmp slt i32 %"nn", 1
  br i1 %".64", label %"for.body.5", label %"for.end.5"
for.body.5:
  br label %"for.head.6"
for.end.5:
  %".199" = add nsw i32 %"xx", 1
  br label %"for.head.4"
for.head.6:
  %"cc" = phi  i32 [0, %"for.body.5"], [%".195", %"for.end.7"]
  %".67" = icmp slt i32 %"cc", 2
  br i1 %".67", label %"for.body.6", label %"for.end.6"
for.body.6:
  br label %"for.head.7"
for.end.6:
  %".197" = add nsw i32 %"nn", 1
  br label %"for.head.5"
for.head.7:
  %"rh_rw_fused_yy_fused" = phi  i32 [0, %"for.body.6"], [%".193", %"if.end"]
  %".70" = icmp slt i32 %"rh_rw_fused_yy_fused", 36
  br i1 %".70", label %"for.body.7", label %"for.end.7"
for.body.7:
  %".72" = sdiv i32 %"rh_rw_fused_yy_fused", 12
  %".73" = srem i32 %"rh_rw_fused_yy_fused", 12
  %".74" = icmp ne i32 %".73", 0
  %".75" = xor i32 %".73", 12
  %".76" = icmp slt i32 %".75", 0
  %".77" = and i1 %".74", %".76"
  %".78" = zext i1 %".77" to i32
  %".79" = sub i32 %".72", %".78"
  %".80" = icmp eq i32 %".79", 0
  %".81" = sdiv i32 %"rh_rw_fused_yy_fused", 4
  %".82" = srem i32 %"rh_rw_fused_yy_fused", 4
  %".83" = icmp ne i32 %".82", 0
  %".84" = xor i32 %".82", 4
  %".85" = icmp slt i32 %".84", 0
  %".86" = and i1 %".83", %".85"
  %".87" = zext i1 %".86" to i32
  %".88" = sub i32 %".81", %".87"
  %".89" = srem i32 %".88", 3
  %".90" = icmp ne i32 %".89", 0
  %".91" = xor i32 %".89", 3
  %".92" = icmp slt i32 %".91", 0
  %".93" = and i1 %".90", %".92"
  %".94" = select  i1 %".93", i32 3, i32 0
  %".95" = add i32 %".89", %".94"
  %".96" = icmp eq i32 %".95", 0
  %".97" = and i1 %".80", %".96"
  br i1 %".97", label %"if.then", label %"if.end"
for.end.7:
  %".195" = add nsw i32 %"cc", 1
  br label %"for.head.6"
if.then:
  %".99" = mul i32 %"nn", 32
  %".100" = mul i32 %"cc", 16
  %".101" = add i32 %".99", %".100"
  %".102" = srem i32 %"rh_rw_fused_yy_fused", 4
  %".103" = icmp ne i32 %".102", 0
  %".104" = xor i32 %".102", 4
  %".105" = icmp slt i32 %".104", 0
  %".106" = and i1 %".103", %".105"
  %".107" = select  i1 %".106", i32 4, i32 0
  %".108" = add i32 %".102", %".107"
  %".109" = mul i32 %".108", 4
  %".110" = add i32 %".101", %".109"
  %".111" = add i32 %".110", %"xx"
  %".112" = sext i32 %".111" to i64
  %".113" = getelementptr inbounds float, ptr %".8", i64 %".112"
  store float 0xfff0000000000000, ptr %".113", align 4
  br label %"if.end"
if.end:
  %".116" = mul i32 %"nn", 32
  %".117" = mul i32 %"cc", 16
  %".118" = add i32 %".116", %".117"
  %".119" = srem i32 %"rh_rw_fused_yy_fused", 4
  %".120" = icmp ne i32 %".119", 0
  %".121" = xor i32 %".119", 4
  %".122" = icmp slt i32 %".121", 0
  %".123" = and i1 %".120", %".122"
  %".124" = select  i1 %".123", i32 4, i32 0
  %".125" = add i32 %".119", %".124"
  %".126" = mul i32 %".125", 4
  %".127" = add i32 %".118", %".126"
  %".128" = add i32 %".127", %"xx"
  %".129" = sext i32 %".128" to i64
  %".130" = getelementptr inbounds float, ptr %".8", i64 %".129"
  %".131" = load float, ptr %".130", align 4
  %".132" = mul i32 %"nn", 162
  %".133" = mul i32 %"cc", 81
  %".134" = add i32 %".132", %".133"
  %".135" = srem i32 %"rh_rw_fused_yy_fused", 4
  %".136" = icmp ne i32 %".135", 0
  %".137" = xor i32 %".135", 4
  %".138" = icmp slt i32 %".137", 0
  %".139" = and i1 %".136", %".138"
  %".140" = select  i1 %".139", i32 4, i32 0
  %".141" = add i32 %".135", %".140"
  %".142" = mul i32 %".141", 18
  %".143" = add i32 %".134", %".142"
  %".144" = sdiv i32 %"rh_rw_fused_yy_fused", 12
  %".145" = srem i32 %"rh_rw_fused_yy_fused", 12
  %".146" = icmp ne i32 %".145", 0
  %".147" = xor i32 %".145", 12
  %".148" = icmp slt i32 %".147", 0
  %".149" = and i1 %".146", %".148"
  %".150" = zext i1 %".149" to i32
  %".151" = sub i32 %".144", %".150"
  %".152" = mul i32 %".151", 9
  %".153" = add i32 %".143", %".152"
  %".154" = mul i32 %"xx", 2
  %".155" = add i32 %".153", %".154"
  %".156" = sdiv i32 %"rh_rw_fused_yy_fused", 4
  %".157" = srem i32 %"rh_rw_fused_yy_fused", 4
  %".158" = icmp ne i32 %".157", 0
  %".159" = xor i32 %".157", 4
  %".160" = icmp slt i32 %".159", 0
  %".161" = and i1 %".158", %".160"
  %".162" = zext i1 %".161" to i32
  %".163" = sub i32 %".156", %".162"
  %".164" = srem i32 %".163", 3
  %".165" = icmp ne i32 %".164", 0
  %".166" = xor i32 %".164", 3
  %".167" = icmp slt i32 %".166", 0
  %".168" = and i1 %".165", %".167"
  %".169" = select  i1 %".168", i32 3, i32 0
  %".170" = add i32 %".164", %".169"
  %".171" = add i32 %".155", %".170"
  %".172" = sext i32 %".171" to i64
  %".173" = getelementptr inbounds float, ptr %".9", i64 %".172"
  %".174" = load float, ptr %".173", align 4
  %".175" = fcmp ogt float %".131", %".174"
  %".176" = select  i1 %".175", float %".131", float %".174"
  %".177" = mul i32 %"nn", 32
  %".178" = mul i32 %"cc", 16
  %".179" = add i32 %".177", %".178"
  %".180" = srem i32 %"rh_rw_fused_yy_fused", 4
  %".181" = icmp ne i32 %".180", 0
  %".182" = xor i32 %".180", 4
  %".183" = icmp slt i32 %".182", 0
  %".184" = and i1 %".181", %".183"
  %".185" = select  i1 %".184", i32 4, i32 0
  %".186" = add i32 %".180", %".185"
  %".187" = mul i32 %".186", 4
  %".188" = add i32 %".179", %".187"
  %".189" = add i32 %".188", %"xx"
  %".190" = sext i32 %".189" to i64
  %".191" = getelementptr inbounds float, ptr %".8", i64 %".190"
  store float %".176", ptr %".191", align 4
  %".193" = add nsw i32 %"rh_rw_fused_yy_fused", 1
  br label %"for.head.7"
}
